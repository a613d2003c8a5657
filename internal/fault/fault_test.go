package fault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

func TestOf(t *testing.T) {
	plain := errors.New("boom")
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"unmarked", plain, Internal},
		{"usage", UsageError(plain), Usage},
		{"input", InputError(plain), Input},
		{"wrapped input", fmt.Errorf("bake caspar: %w", InputError(plain)), Input},
		{"outermost wins", Classed(Internal, fmt.Errorf("x: %w", InputError(plain))), Internal},
		{"cancelled", InputError(fmt.Errorf("copy: %w", context.Canceled)), Interrupted},
		{"cancel below a mark", Classed(Input, fmt.Errorf("x: %w", &Error{Class: Usage, Err: context.Canceled})), Interrupted},
		{"disk full", HostOrInternal(&os.PathError{Op: "write", Path: "/out/caspar.img", Err: syscall.ENOSPC}), Input},
		{"read-only", HostOrInternal(&os.PathError{Op: "rename", Path: "/out", Err: syscall.EROFS}), Input},
		{"permission", HostOrInternal(&os.PathError{Op: "open", Path: "/out", Err: syscall.EACCES}), Input},
		{"other I/O", HostOrInternal(&os.PathError{Op: "read", Path: "/out", Err: syscall.EIO}), Internal},
	} {
		if got := Of(tc.err); got != tc.want {
			t.Errorf("%s: Of(%v) = %d, want %d", tc.name, tc.err, got, tc.want)
		}
	}
	if Classed(Input, nil) != nil || HostOrInternal(nil) != nil {
		t.Error("nil must stay nil")
	}
	if e := InputError(plain); e.Error() != "boom" || !errors.Is(e, plain) {
		t.Errorf("marked error reads %q", e)
	}
}
