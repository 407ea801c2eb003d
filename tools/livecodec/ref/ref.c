#include <opus/opus.h>
#include <stdio.h>
#include <stdint.h>
int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: ref PACKETS OUT.raw\n"); return 2; }
  int err; OpusDecoder *d = opus_decoder_create(48000, 1, &err);
  FILE *in = fopen(argv[1], "rb"), *out = fopen(argv[2], "wb");
  unsigned char l[2], p[1500]; opus_int16 pcm[5760];
  while (fread(l, 1, 2, in) == 2) {
    int n = l[0] | l[1] << 8; fread(p, 1, n, in);
    int s = opus_decode(d, p, n, pcm, 5760, 0);
    if (s < 0) { fprintf(stderr, "decode error %d\n", s); continue; }
    fwrite(pcm, 2, s, out);
  }
  fclose(out); return 0;
}
