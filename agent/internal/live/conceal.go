package live

// Conceal fills out with audio for a lost frame, from the last frame
// that sounded (decoded to PCM, as long as out) and the slot's Run: the
// first lost frame repeats it fading from full to half, the second from
// half to nothing, and from the third on the box is silent. A repeated
// voiced frame bridges a short gap without a click; a long gap is
// silence rather than a stutter. (The pure-Go Opus decoder has no
// concealment of its own, so this serves every codec; docs/live.md.)
func Conceal(last []int16, run int, out []int16) {
	if run < 1 || run > 2 || len(last) == 0 {
		clear(out)
		return
	}
	from, to := 1.0, 0.5
	if run == 2 {
		from, to = 0.5, 0
	}
	n := len(out)
	for i := range out {
		g := from + (to-from)*float64(i)/float64(n)
		out[i] = int16(float64(last[i%len(last)]) * g)
	}
}
