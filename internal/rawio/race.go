//go:build linux && race

package rawio

// raceRead and raceWrote show the race detector the accesses the raw
// system calls make to a buffer, which it does not instrument: a write
// reads p, a read wrote p. copy is instrumented as a read of its source
// range and a write of its destination range.
func raceRead(p []byte) {
	var scratch [512]byte
	for len(p) > 0 {
		p = p[copy(scratch[:], p):]
	}
}

func raceWrote(p []byte) {
	copy(p, p)
}
