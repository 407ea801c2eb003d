// Package ebd speaks the packet format of China's emergency-broadcast
// chain: the interface between emergency-broadcast platforms of GD/J
// 083-2018 (reissued as GY/T 384-2023), through which a province (or the
// government's early-warning release system) sends a county platform signed
// emergency messages and the county reports back upward.
//
// A packet travels as a tar archive (application/x-tar) holding
// EBDB_<EBDID>.xml (the packet, an <EBD> element), EBDS_EBDB_<EBDID>.xml
// (its signature, a <Signature> element: SM2 over the SM3 digest of the
// exact bytes of the EBDB file, GD/J 081 / GY/T 389) and any audio files
// the message names. The answer is a tar of the same shape holding an
// EBDResponse packet.
//
// The package is pure: it reads and writes bytes, and takes the time as an
// argument. ReadTar reads an archive within Limits; TrustStore.Verify
// checks a signature against the upper platform's certificates (looked up
// by CertSN, the serial in hex); Decode reads and validates a packet;
// Receive does the three in the order that matters (the signature over the
// exact EBDB bytes is checked before anything of consequence is parsed).
// Identity is this platform's own SM2 key and certificate, which signs what
// it sends (Pack), its answers included (Response). Every refusal is a *cx.Error
// with a reason key; ResultOf turns one into the EBDResponse ResultCode the
// sender is answered with.
//
// What each element means, where it comes from and where public sources
// disagree is written down in docs/ebd.md.
package ebd
