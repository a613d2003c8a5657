package bake

import (
	"errors"

	"github.com/magibake/magibake/internal/ext4"
)

// InputProblem says whether a failure of Apply is the input's rather than
// magibake's: the base's file systems full, corrupt, dirty or using
// features the ext4 writer refuses, or an overlay that does not fit the
// base.
func InputProblem(err error) bool {
	for _, e := range []error{ext4.ErrNoSpace, ErrBootFull, ErrConflict, ErrExpect, ext4.ErrUnsupported, ext4.ErrCorrupt, ext4.ErrNeedsCheck} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
