package plan

import (
	"reflect"
	"testing"
)

func TestFinal(t *testing.T) {
	w := func(part Partition, path, content string) Op {
		return Op{Kind: WriteFile, Partition: part, Path: path, Content: []byte(content)}
	}
	cases := []struct {
		name string
		ops  []Op
		want []Op
	}{
		{"empty", nil, nil},
		{"one path rewritten keeps its first place",
			[]Op{w(Root, "/a", "1"), w(Root, "/b", "2"), w(Root, "/a", "3")},
			[]Op{w(Root, "/a", "3"), w(Root, "/b", "2")}},
		{"same path on two partitions is two paths",
			[]Op{w(Boot, "/x", "boot"), w(Root, "/x", "root")},
			[]Op{w(Boot, "/x", "boot"), w(Root, "/x", "root")}},
		{"removal last wins",
			[]Op{w(Root, "/a", "1"), {Kind: Remove, Partition: Root, Path: "/a"}},
			[]Op{{Kind: Remove, Partition: Root, Path: "/a"}}},
		{"a removed path made again as the parent of a later file is not removed",
			[]Op{{Kind: Remove, Partition: Root, Path: "/a"}, w(Root, "/a/b/c", "1"), {Kind: Remove, Partition: Boot, Path: "/a"}},
			[]Op{w(Root, "/a/b/c", "1"), {Kind: Remove, Partition: Boot, Path: "/a"}}},
	}
	for _, c := range cases {
		if got := (&Plan{Ops: c.ops}).Final(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: Final() = %+v, want %+v", c.name, got, c.want)
		}
	}
}
