package ext4

import (
	"io/fs"
	"syscall"
)

func sysOwner(fi fs.FileInfo) ([2]uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return [2]uint32{}, false
	}
	return [2]uint32{st.Uid, st.Gid}, true
}
