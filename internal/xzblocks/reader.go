package xzblocks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"runtime"
	"sort"
	"sync"

	"github.com/magibake/magibake/internal/ctxio"
	"github.com/magibake/magibake/internal/zeros"
)

// copyBuf is the size of the scratch buffer each decoding goroutine uses.
const copyBuf = 1 << 20

// maxPrealloc bounds the buffer reserved for a decoded block up front: the
// index's size is not trusted until the block decodes to it.
const maxPrealloc = 256 << 20

// ReadAt keeps decoded blocks up to cacheBytes, and at least minCached
// blocks whatever their size, so two blocks read in turn are not decoded
// again and again.
const (
	cacheBytes = 96 << 20
	minCached  = 2
)

// Reader decodes the blocks of an indexed xz file. It is safe for
// concurrent use.
type Reader struct {
	r     io.ReaderAt
	index *Index

	mu      sync.Mutex
	cache   []cached // most recently used last
	loading map[int]*loadingBlock
}

// loadingBlock is a block being decoded for ReadAt: a second reader of the
// same block waits for it instead of decoding it again.
type loadingBlock struct {
	done chan struct{}
	data []byte
	err  error
}

type cached struct {
	block int
	data  []byte
}

// Open reads the index of the xz file r of the given size.
func Open(r io.ReaderAt, size int64) (*Reader, error) {
	idx, err := ReadIndex(r, size)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, index: idx}, nil
}

// Index returns the blocks of the file.
func (x *Reader) Index() *Index { return x.index }

// Size is the decompressed size.
func (x *Reader) Size() int64 { return x.index.Size }

// DecodeBlock decodes block i into w, verifying it.
func (x *Reader) DecodeBlock(i int, w io.Writer) error {
	return decodeBlock(x.r, x.index.Blocks[i], i, w, make([]byte, copyBuf))
}

// workers is the number of decoding goroutines: n, or one per core.
func workers(n int) int {
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	return n
}

// DecodeTo decodes every block straight into dst at its offset, n blocks at
// a time (n <= 0: one per core). With sparse set, all-zero 1 MiB runs
// aligned to the block are not written, so a fresh file keeps them as holes;
// the caller sizes the file. It stops at the first error or when ctx ends.
func (x *Reader) DecodeTo(ctx context.Context, dst io.WriterAt, n int, sparse bool) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers(n), max(len(x.index.Blocks), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, copyBuf)
			for i := range next {
				b := x.index.Blocks[i]
				w := &offsetWriter{ctx: ctx, dst: dst, off: b.UncompressedOffset, sparse: sparse}
				if err := decodeBlock(x.r, b, i, w, buf); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range x.index.Blocks {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// offsetWriter writes sequentially into an io.WriterAt, skipping zero
// buffers when sparse, and stops when ctx ends.
type offsetWriter struct {
	ctx    context.Context
	dst    io.WriterAt
	off    int64
	sparse bool
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, context.Cause(w.ctx)
	}
	if !w.sparse || !zeros.All(p) {
		if _, err := w.dst.WriteAt(p, w.off); err != nil {
			return 0, err
		}
	}
	w.off += int64(len(p))
	return len(p), nil
}

// NewStream returns the decompressed data in order, decoding up to n blocks
// ahead in parallel (n <= 0: one per core). Close it to stop the decoders
// early. Memory use is about 2n+1 decoded blocks.
func (x *Reader) NewStream(ctx context.Context, n int) io.ReadCloser {
	ctx, cancel := context.WithCancel(ctx)
	n = workers(n)
	s := &stream{cancel: cancel, order: make(chan chan result, n)}
	go func() {
		defer close(s.order)
		sem := make(chan struct{}, n)
		for i, b := range x.index.Blocks {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			ch := make(chan result, 1)
			select {
			case s.order <- ch:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-sem }()
				var buf bytes.Buffer
				buf.Grow(int(min(b.UncompressedSize, maxPrealloc)))
				err := decodeBlock(x.r, b, i, ctxio.Writer(ctx, &buf), make([]byte, copyBuf))
				ch <- result{buf.Bytes(), err}
			}()
		}
	}()
	return s
}

type result struct {
	data []byte
	err  error
}

type stream struct {
	cancel context.CancelFunc
	order  chan chan result
	cur    []byte
	err    error
}

func (s *stream) Read(p []byte) (int, error) {
	for len(s.cur) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		ch, ok := <-s.order
		if !ok {
			s.err = io.EOF
			return 0, io.EOF
		}
		r := <-ch
		s.cur, s.err = r.data, r.err
		if s.err != nil {
			s.cancel()
			return 0, s.err
		}
	}
	n := copy(p, s.cur)
	s.cur = s.cur[n:]
	return n, nil
}

// Close stops the decoders.
func (s *stream) Close() error {
	s.cancel()
	s.cur = nil
	if s.err == nil {
		s.err = errors.New("xzblocks: read from a closed stream")
	}
	// Let the feeder and decoders finish so no goroutine outlives Close.
	for ch := range s.order {
		<-ch
	}
	return nil
}

// ReadAt reads decompressed bytes at off, decoding the blocks it needs and
// keeping the last few decoded blocks for the next reads.
func (x *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("xzblocks: negative offset")
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= x.index.Size {
			return n, io.EOF
		}
		i := x.blockAt(pos)
		data, err := x.block(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[pos-x.index.Blocks[i].UncompressedOffset:])
	}
	return n, nil
}

// blockAt is the index of the block holding decompressed byte pos.
func (x *Reader) blockAt(pos int64) int {
	bs := x.index.Blocks
	return sort.Search(len(bs), func(i int) bool {
		return bs[i].UncompressedOffset+bs[i].UncompressedSize > pos
	})
}

// block returns block i decoded, from the cache or freshly; concurrent
// readers of one block share one decode.
func (x *Reader) block(i int) ([]byte, error) {
	x.mu.Lock()
	for k, c := range x.cache {
		if c.block == i {
			x.cache = append(append(x.cache[:k:k], x.cache[k+1:]...), c)
			x.mu.Unlock()
			return c.data, nil
		}
	}
	if l, ok := x.loading[i]; ok {
		x.mu.Unlock()
		<-l.done
		return l.data, l.err
	}
	l := &loadingBlock{done: make(chan struct{})}
	if x.loading == nil {
		x.loading = map[int]*loadingBlock{}
	}
	x.loading[i] = l
	x.mu.Unlock()

	// Deferred, so that waiters are released even if decoding panics.
	returned := false
	defer func() {
		x.mu.Lock()
		delete(x.loading, i)
		if !returned {
			l.err = errors.New("xzblocks: decoding a block failed")
		} else if l.err == nil {
			x.cache = append(x.cache, cached{i, l.data})
			total := 0
			for _, c := range x.cache {
				total += len(c.data)
			}
			for len(x.cache) > minCached && total > cacheBytes {
				total -= len(x.cache[0].data)
				x.cache = x.cache[1:]
			}
		}
		x.mu.Unlock()
		close(l.done)
	}()
	var buf bytes.Buffer
	buf.Grow(int(min(x.index.Blocks[i].UncompressedSize, maxPrealloc)))
	l.err = x.DecodeBlock(i, &buf)
	if l.err == nil {
		l.data = buf.Bytes()
	}
	returned = true
	return l.data, l.err
}
