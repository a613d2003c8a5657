// Package lzma2 decodes the LZMA2 data of one xz block whose decoded size is
// known (the xz index says it) straight into one flat buffer.
//
// ulikunitz/xz decodes through a ring-buffer dictionary and copies matches
// a few bytes at a time: a run of zeros (an empty part of a card) comes out
// at about 120 MB/s, and mixed data at about 60 MB/s per core, against
// liblzma's 500 and 125 here. With the whole block in memory the output is
// its own dictionary, a match is one or a few copy() calls, and the range
// decoder keeps its state in locals. The format is LZMA2 as xz writes it
// (https://tukaani.org/xz/xz-file-format.txt) around LZMA as in the LZMA SDK's
// lzma-specification.txt, whose names the code follows.
package lzma2

import (
	"errors"
	"fmt"
)

// ErrCorrupt marks data that is not valid LZMA2; the message says where.
var ErrCorrupt = errors.New("LZMA2 data is corrupt")

// ErrTooLong marks data that decodes to more bytes than the caller allowed.
var ErrTooLong = errors.New("LZMA2 data decodes to more bytes than expected")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

const (
	numStates          = 12
	posBitsMax         = 4
	numLenToPosStates  = 4
	numAlignBits       = 4
	endPosModelIndex   = 14
	numFullDistances   = 1 << (endPosModelIndex >> 1)
	matchMinLen        = 2
	probInit           = 1 << 10
	numBitModelTotal   = 11
	numMoveBits        = 5
	topValue           = 1 << 24
	literalCoderSize   = 0x300
	maxLcPlusLp        = 4
	maxUncompressedLen = 1 << 21 // an LZMA2 chunk decodes to at most 2 MiB
)

type lenDecoder struct {
	choice, choice2 uint16
	low             [1 << posBitsMax][1 << 3]uint16
	mid             [1 << posBitsMax][1 << 3]uint16
	high            [1 << 8]uint16
}

func (l *lenDecoder) reset() {
	l.choice, l.choice2 = probInit, probInit
	for i := range l.low {
		for j := range l.low[i] {
			l.low[i][j], l.mid[i][j] = probInit, probInit
		}
	}
	for i := range l.high {
		l.high[i] = probInit
	}
}

// state is the LZMA decoder state that survives between the chunks of a
// block until a chunk resets it.
type state struct {
	lc, lp, pb             uint
	state                  uint32
	rep0, rep1, rep2, rep3 uint32
	isMatch                [numStates << posBitsMax]uint16
	isRep                  [numStates]uint16
	isRepG0                [numStates]uint16
	isRepG1                [numStates]uint16
	isRepG2                [numStates]uint16
	isRep0Long             [numStates << posBitsMax]uint16
	posSlot                [numLenToPosStates][1 << 6]uint16
	posDecoders            [1 + numFullDistances - endPosModelIndex]uint16
	align                  [1 << numAlignBits]uint16
	matchLen, repLen       lenDecoder
	literal                []uint16
}

func (s *state) reset() {
	s.state, s.rep0, s.rep1, s.rep2, s.rep3 = 0, 0, 0, 0, 0
	for _, p := range [][]uint16{s.isMatch[:], s.isRep[:], s.isRepG0[:], s.isRepG1[:], s.isRepG2[:],
		s.isRep0Long[:], s.posDecoders[:], s.align[:]} {
		for i := range p {
			p[i] = probInit
		}
	}
	for i := range s.posSlot {
		for j := range s.posSlot[i] {
			s.posSlot[i][j] = probInit
		}
	}
	s.matchLen.reset()
	s.repLen.reset()
	n := literalCoderSize << (s.lc + s.lp)
	if cap(s.literal) < n {
		s.literal = make([]uint16, n)
	}
	s.literal = s.literal[:n]
	for i := range s.literal {
		s.literal[i] = probInit
	}
}

func (s *state) setProps(b byte) error {
	if b >= 9*5*5 {
		return corrupt("bad LZMA properties byte %#x", b)
	}
	lc, lp, pb := uint(b%9), uint(b/9%5), uint(b/45)
	if lc+lp > maxLcPlusLp {
		return corrupt("lc + lp = %d, LZMA2 allows at most 4", lc+lp)
	}
	s.lc, s.lp, s.pb = lc, lp, pb
	return nil
}

// Decode decodes the LZMA2 data in src, which must end with the LZMA2 end
// marker, appending the output to dst. It fails with ErrTooLong rather than
// grow dst beyond its capacity, so the caller bounds the output by giving a
// dst whose capacity is the expected size. dictCap is the dictionary size
// of the block header: no match may reach further back. It returns the
// output and how many bytes of src the data took, end marker included.
func Decode(dst, src []byte, dictCap int) ([]byte, int, error) {
	return DecodeFunc(dst, src, dictCap, nil)
}

// DecodeFunc is Decode calling chunk, if not nil, with all the output so
// far after each LZMA2 chunk (at most 2 MiB more): the caller can hash and
// write what is done while it is still in the CPU's cache. Written after
// the whole 24 MiB block instead, the bench card's 1.6 GB took 1.3 s of
// CPU to copy into the page cache, against 0.2 s. An error from chunk
// stops the decoding and is returned as is.
func DecodeFunc(dst, src []byte, dictCap int, chunk func(out []byte) error) ([]byte, int, error) {
	var s state
	out := dst
	ip := 0
	needDictReset, needProps := true, true
	dictStart := len(out)
	for {
		if ip >= len(src) {
			return out, ip, corrupt("data ends without the end marker")
		}
		c := src[ip]
		ip++
		if c == 0 {
			return out, ip, nil
		}
		if c >= 0xe0 || c == 0x01 {
			needProps, needDictReset = true, false
			dictStart = len(out)
		} else if needDictReset {
			return out, ip, corrupt("first chunk does not reset the dictionary")
		}
		if c < 0x80 {
			if c > 0x02 {
				return out, ip, corrupt("bad chunk control byte %#x", c)
			}
			if ip+2 > len(src) {
				return out, ip, corrupt("truncated chunk header")
			}
			n := int(src[ip])<<8 | int(src[ip+1]) + 1
			ip += 2
			if ip+n > len(src) {
				return out, ip, corrupt("truncated uncompressed chunk")
			}
			if len(out)+n > cap(out) {
				return out, ip, ErrTooLong
			}
			out = append(out, src[ip:ip+n]...)
			ip += n
			if chunk != nil {
				if err := chunk(out); err != nil {
					return out, ip, err
				}
			}
			continue
		}
		if ip+4 > len(src) {
			return out, ip, corrupt("truncated chunk header")
		}
		unpacked := int(c&0x1f)<<16 | int(src[ip])<<8 | int(src[ip+1]) + 1
		packed := int(src[ip+2])<<8 | int(src[ip+3]) + 1
		ip += 4
		if c >= 0xc0 {
			if ip >= len(src) {
				return out, ip, corrupt("truncated chunk header")
			}
			if err := s.setProps(src[ip]); err != nil {
				return out, ip, err
			}
			ip++
			needProps = false
		} else if needProps {
			return out, ip, corrupt("LZMA chunk without properties")
		}
		if c >= 0xa0 {
			s.reset()
		}
		if ip+packed > len(src) {
			return out, ip, corrupt("truncated LZMA chunk")
		}
		if len(out)+unpacked > cap(out) {
			return out, ip, ErrTooLong
		}
		var err error
		if out, err = s.decodeChunk(out, src[ip:ip+packed], unpacked, dictStart, dictCap); err != nil {
			return out, ip, err
		}
		ip += packed
		if chunk != nil {
			if err := chunk(out); err != nil {
				return out, ip, err
			}
		}
	}
}

// decodeChunk decodes one LZMA chunk, in (range coder data), into exactly
// n more bytes of out. Positions for the position-dependent contexts count
// from dictStart, the last dictionary reset, as the encoder's did.
func (s *state) decodeChunk(out, in []byte, n, dictStart, dictCap int) ([]byte, error) {
	if len(in) < 5 || in[0] != 0 {
		return out, corrupt("bad range coder start")
	}
	rng := uint32(0xffffffff)
	code := uint32(in[1])<<24 | uint32(in[2])<<16 | uint32(in[3])<<8 | uint32(in[4])
	ip := 5
	overrun := false
	// normalize refills the range a byte at a time. Reading past the chunk
	// sets overrun and feeds zeros: the chunk is then rejected at its end,
	// and the loop is bounded by n anyway.
	normalize := func() {
		if rng < topValue {
			rng <<= 8
			var c byte
			if ip < len(in) {
				c = in[ip]
			} else {
				overrun = true
			}
			ip++
			code = code<<8 | uint32(c)
		}
	}
	// bit decodes one bit with probability *p.
	bit := func(p *uint16) uint32 {
		prob := uint32(*p)
		bound := (rng >> numBitModelTotal) * prob
		// Without branches: which bit comes out is data, and a
		// mispredicted branch per bit costs more than computing both sides.
		b := uint32((uint64(code)-uint64(bound))>>63) ^ 1 // 0 if code < bound
		m := b - 1                                        // all ones for bit 0
		rng = bound&m | (rng-bound)&^m
		code -= bound &^ m
		*p = uint16((prob+(1<<numBitModelTotal-prob)>>numMoveBits)&m | (prob-prob>>numMoveBits)&^m)
		normalize()
		return b
	}
	tree := func(probs []uint16, bits int) uint32 {
		m := uint32(1)
		for range bits {
			m = m<<1 | bit(&probs[m])
		}
		return m - 1<<bits
	}
	reverse := func(probs []uint16, bits int) uint32 {
		m, sym := uint32(1), uint32(0)
		for i := range bits {
			b := bit(&probs[m])
			m = m<<1 | b
			sym |= b << i
		}
		return sym
	}
	length := func(l *lenDecoder, posState uint32) int {
		if bit(&l.choice) == 0 {
			return int(tree(l.low[posState][:], 3))
		}
		if bit(&l.choice2) == 0 {
			return 8 + int(tree(l.mid[posState][:], 3))
		}
		return 16 + int(tree(l.high[:], 8))
	}

	pos := len(out)
	end := pos + n
	out = out[:end]
	pbMask := uint32(1)<<s.pb - 1
	lpMask := uint32(1)<<s.lp - 1
	lc := s.lc
	st := s.state
	rep0, rep1, rep2, rep3 := s.rep0, s.rep1, s.rep2, s.rep3
	for pos < end {
		total := uint32(pos - dictStart)
		posState := total & pbMask
		if bit(&s.isMatch[st<<posBitsMax|posState]) == 0 {
			var prev uint32
			if pos > dictStart {
				prev = uint32(out[pos-1])
			}
			probs := s.literal[literalCoderSize*((total&lpMask)<<lc+prev>>(8-lc)):][:literalCoderSize]
			sym := uint32(1)
			if st >= 7 {
				// In int64: on 32-bit hosts int(rep0) can be negative.
				if int64(rep0) >= int64(pos-dictStart) {
					return out, corrupt("match distance beyond the dictionary")
				}
				match := uint32(out[pos-int(rep0)-1])
				for sym < 0x100 {
					mb := match >> 7 & 1
					match <<= 1
					b := bit(&probs[(1+mb)<<8+sym])
					sym = sym<<1 | b
					if mb != b {
						break
					}
				}
			}
			for sym < 0x100 {
				sym = sym<<1 | bit(&probs[sym])
			}
			out[pos] = byte(sym)
			pos++
			switch {
			case st < 4:
				st = 0
			case st < 10:
				st -= 3
			default:
				st -= 6
			}
			continue
		}
		var l int
		if bit(&s.isRep[st]) != 0 {
			if pos == dictStart {
				return out, corrupt("repeated match at the start of the dictionary")
			}
			if bit(&s.isRepG0[st]) == 0 {
				if bit(&s.isRep0Long[st<<posBitsMax|posState]) == 0 {
					if int64(rep0) >= int64(pos-dictStart) {
						return out, corrupt("match distance beyond the dictionary")
					}
					out[pos] = out[pos-int(rep0)-1]
					pos++
					if st < 7 {
						st = 9
					} else {
						st = 11
					}
					continue
				}
			} else {
				var d uint32
				if bit(&s.isRepG1[st]) == 0 {
					d = rep1
				} else {
					if bit(&s.isRepG2[st]) == 0 {
						d = rep2
					} else {
						d, rep3 = rep3, rep2
					}
					rep2 = rep1
				}
				rep1, rep0 = rep0, d
			}
			l = length(&s.repLen, posState)
			if st < 7 {
				st = 8
			} else {
				st = 11
			}
		} else {
			rep3, rep2, rep1 = rep2, rep1, rep0
			l = length(&s.matchLen, posState)
			if st < 7 {
				st = 7
			} else {
				st = 10
			}
			lenState := min(l, numLenToPosStates-1)
			slot := tree(s.posSlot[lenState][:], 6)
			if slot < 4 {
				rep0 = slot
			} else {
				direct := int(slot>>1) - 1
				dist := (2 | slot&1) << direct
				if slot < endPosModelIndex {
					dist += reverse(s.posDecoders[dist-slot:], direct)
				} else {
					var res uint32
					for range direct - numAlignBits {
						rng >>= 1
						code -= rng
						t := 0 - code>>31
						code += rng & t
						if code == rng {
							return out, corrupt("bad direct bits")
						}
						normalize()
						res = res<<1 + t + 1
					}
					dist += res << numAlignBits
					dist += reverse(s.align[:], numAlignBits)
				}
				rep0 = dist
			}
			if rep0 == 0xffffffff {
				return out, corrupt("end-of-payload marker inside an LZMA2 chunk")
			}
		}
		l += matchMinLen
		d64 := int64(rep0) + 1
		if d64 > int64(pos-dictStart) || dictCap > 0 && d64 > int64(dictCap) {
			return out, corrupt("match distance beyond the dictionary")
		}
		d := int(d64)
		if l > end-pos {
			return out, corrupt("match runs past the end of the chunk")
		}
		src := pos - d
		if d >= l {
			copy(out[pos:pos+l], out[src:src+l])
		} else {
			// The match overlaps its own output: a run with period d.
			// Each copy doubles what is there to copy from.
			done := 0
			for done < l {
				done += copy(out[pos+done:pos+l], out[src:pos+done])
			}
		}
		pos += l
	}
	s.state, s.rep0, s.rep1, s.rep2, s.rep3 = st, rep0, rep1, rep2, rep3
	if overrun || ip != len(in) {
		return out, corrupt("LZMA chunk is %d bytes, its data took %d", len(in), ip)
	}
	if code != 0 {
		return out, corrupt("range coder does not end cleanly")
	}
	return out, nil
}
