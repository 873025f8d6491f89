package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strings"
	"syscall"
	"time"
)

// rawFile reads a bbolt file page by page with ReadAt, never through a
// memory map, and checks every page it reads: its id, its type, its
// elements against its length, and every page reference against the
// file's high-water mark and length. It is how sluice looks at a queue
// file that may be damaged: bbolt itself trusts its pages (an assertion
// panics on a bad header, and a reference past the end of a truncated
// file faults in its memory map, which recover() cannot catch). Nothing
// here panics on bad input and nothing recurses without bound.
//
// The layout read is bbolt's file format version 2 (go.etcd.io/bbolt
// internal/common): a page starts with a 16-byte header (id u64, flags
// u16, count u16, overflow u32), in the machine's byte order; pages 0
// and 1 hold the meta, the newest valid one of which names the root
// bucket page, the freelist page and the high-water mark.
type rawFile struct {
	f        *os.File
	path     string
	size     int64
	pageSize int64
	meta     rawMeta // the meta bbolt would use
	free     uint64  // page ids on the freelist page (free and pending)
	reads    int     // pages read, for the tests of what start-up costs
}

// rawMeta is bbolt's meta page body.
type rawMeta struct {
	magic, version, pageSize, flags uint32
	root, sequence                  uint64
	freelist, hwm, txid, checksum   uint64
}

const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaSize         = 64
	metaChecksumOff  = 56 // the checksum covers the meta up to itself
	branchElemSize   = 16
	leafElemSize     = 16
	branchPageFlag   = 0x01
	leafPageFlag     = 0x02
	metaPageFlag     = 0x04
	freelistPageFlag = 0x10
	bucketLeafFlag   = 0x01
	noFreelist       = ^uint64(0)
	// maxTreeDepth bounds a descent: a B+tree of a queue file is a few
	// levels deep; a deeper one is a cycle or garbage.
	maxTreeDepth = 64
)

// ne is the byte order bbolt writes: the machine's. Every platform sluice
// runs on is little-endian.
var ne = binary.LittleEndian

// openRaw opens path read-only under a shared lock (a running daemon
// holds an exclusive one) and validates what can be validated in O(1):
// the meta pages, the page size, the file length against the high-water
// mark, and the headers of the root, freelist and top-level bucket pages.
// A damaged file gives a *FileError.
// It waits up to lockWait for the lock, as bbolt's Open does.
func openRaw(path string, lockWait time.Duration) (*rawFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !time.Now().Before(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("queue file %s is locked: is another sluice serve running on this data_dir?: %w", path, ErrLocked)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rf := &rawFile{f: f, path: path}
	if err := rf.validate(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return rf, nil
}

func (rf *rawFile) Close() error { return rf.f.Close() }

func (rf *rawFile) damaged(format string, args ...any) *FileError {
	return &FileError{Path: rf.path, Kind: FileDamaged, Detail: fmt.Sprintf(format, args...)}
}

func (rf *rawFile) validate() error {
	st, err := rf.f.Stat()
	if err != nil {
		return err
	}
	rf.size = st.Size()
	if rf.size == 0 {
		return &FileError{Path: rf.path, Kind: FileEmpty, Detail: "the file is empty (0 bytes)"}
	}
	m0, err0 := rf.readMeta(0, 0)
	var ps int64
	if err0 == nil {
		ps = int64(m0.pageSize)
	} else {
		// Page 0 is bad: find page 1 by trying the page sizes bbolt
		// supports, as bbolt does.
		for sz := int64(1024); sz <= 1<<24 && sz < rf.size; sz <<= 1 {
			if m, err := rf.readMeta(sz, 1); err == nil && int64(m.pageSize) == sz {
				ps = sz
				break
			}
		}
		if ps == 0 {
			return rf.damaged("no valid meta page (page 0: %v); this is not a readable bbolt queue file", err0)
		}
	}
	rf.pageSize = ps
	m1, err1 := rf.readMeta(ps, 1)
	// bbolt uses the valid meta with the higher transaction id.
	switch {
	case err0 == nil && err1 == nil:
		rf.meta = m0
		if m1.txid > m0.txid {
			rf.meta = m1
		}
	case err0 == nil:
		rf.meta = m0
	case err1 == nil:
		rf.meta = m1
	default:
		return rf.damaged("both meta pages are invalid (page 0: %v; page 1: %v)", err0, err1)
	}
	if int64(rf.meta.pageSize) != ps {
		return rf.damaged("the meta pages disagree on the page size (%d and %d)", ps, rf.meta.pageSize)
	}
	m := rf.meta
	if m.hwm < 4 {
		return rf.damaged("high-water mark %d is below the 4 pages of an empty file", m.hwm)
	}
	if need := int64(m.hwm) * ps; rf.size < need {
		return rf.damaged("the file is %d bytes but its meta page says it holds %d pages of %d bytes (%d bytes): it was truncated", rf.size, m.hwm, ps, need)
	}
	if m.root < 2 || m.root >= m.hwm {
		return rf.damaged("the root bucket page %d is outside the file's %d pages", m.root, m.hwm)
	}
	if m.freelist != noFreelist {
		if m.freelist < 2 || m.freelist >= m.hwm {
			return rf.damaged("the freelist page %d is outside the file's %d pages", m.freelist, m.hwm)
		}
		if err := rf.checkFreelist(); err != nil {
			return err
		}
	}
	// The root page and the root page of every top-level bucket: what
	// bbolt touches first when the queue opens. The buckets that start-up
	// reads whole (leases, suppressions, destination states) are walked:
	// they are small.
	return rf.eachBucket(func(name []byte, b rawBucket) error {
		if b.root != 0 {
			if _, err := rf.page(b.root, branchPageFlag|leafPageFlag); err != nil {
				return err
			}
		}
		switch string(name) {
		case string(bktActive), string(bktSuppress), string(bktDest):
			return rf.walk(b, func(k, v []byte, flags uint32) error { return nil }, nil)
		}
		return nil
	})
}

// checkFreelist checks the freelist page as bbolt reads it at open: its
// count (0xFFFF: the count is the first element) fits the page, and every
// free page id is a page of the file, listed once.
func (rf *rawFile) checkFreelist() error {
	id := rf.meta.freelist
	p, err := rf.page(id, freelistPageFlag)
	if err != nil {
		return err
	}
	idx, count := uint64(0), uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return rf.damaged("freelist page %d: too short", id)
		}
		idx, count = 1, ne.Uint64(p[pageHeaderSize:])
	}
	if count > uint64(len(p)-pageHeaderSize)/8 || pageHeaderSize+(idx+count)*8 > uint64(len(p)) {
		return rf.damaged("freelist page %d: %d free page ids do not fit the page", id, count)
	}
	seen := make(map[uint64]bool, count)
	for i := idx; i < idx+count; i++ {
		fid := ne.Uint64(p[pageHeaderSize+i*8:])
		if fid < 2 || fid >= rf.meta.hwm || seen[fid] {
			return rf.damaged("freelist page %d: free page id %d is not a page of the file, or listed twice", id, fid)
		}
		seen[fid] = true
	}
	rf.free = count
	return nil
}

func (rf *rawFile) readMeta(pageSize int64, id int64) (rawMeta, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	if n, err := rf.f.ReadAt(buf, pageSize*id); n < len(buf) {
		if err == nil || err == io.EOF {
			err = errors.New("short read")
		}
		return rawMeta{}, err
	}
	if got := ne.Uint64(buf); got != uint64(id) {
		return rawMeta{}, fmt.Errorf("page id %d, want %d", got, id)
	}
	if fl := ne.Uint16(buf[8:]); fl != metaPageFlag {
		return rawMeta{}, fmt.Errorf("page type %#x is not meta", fl)
	}
	b := buf[pageHeaderSize:]
	m := rawMeta{
		magic: ne.Uint32(b), version: ne.Uint32(b[4:]), pageSize: ne.Uint32(b[8:]), flags: ne.Uint32(b[12:]),
		root: ne.Uint64(b[16:]), sequence: ne.Uint64(b[24:]), freelist: ne.Uint64(b[32:]),
		hwm: ne.Uint64(b[40:]), txid: ne.Uint64(b[48:]), checksum: ne.Uint64(b[56:]),
	}
	switch {
	case m.magic != boltMagic:
		return m, fmt.Errorf("bad magic %#x", m.magic)
	case m.version != boltVersion:
		return m, fmt.Errorf("format version %d, want %d", m.version, boltVersion)
	}
	h := fnv.New64a()
	_, _ = h.Write(b[:metaChecksumOff])
	if h.Sum64() != m.checksum {
		return m, errors.New("checksum mismatch")
	}
	if m.pageSize < 512 || m.pageSize > 1<<24 || m.pageSize&(m.pageSize-1) != 0 {
		return m, fmt.Errorf("page size %d", m.pageSize)
	}
	return m, nil
}

// page reads page id with its overflow pages, checks that its header
// names it and that its type is one of want (a bit set of page flags),
// and returns the whole page.
func (rf *rawFile) page(id uint64, want uint16) ([]byte, error) {
	if id < 2 || id >= rf.meta.hwm {
		return nil, rf.damaged("reference to page %d outside the file's %d pages", id, rf.meta.hwm)
	}
	ps := rf.pageSize
	rf.reads++
	hdr := make([]byte, pageHeaderSize)
	if _, err := rf.f.ReadAt(hdr, int64(id)*ps); err != nil {
		return nil, rf.damaged("page %d: %v", id, err)
	}
	if got := ne.Uint64(hdr); got != id {
		return nil, rf.damaged("page %d: its header says page %d", id, got)
	}
	flags := ne.Uint16(hdr[8:])
	if flags&want == 0 || flags&(flags-1) != 0 {
		return nil, rf.damaged("page %d: bad page header: type %#x, want a %s page", id, flags, pageTypes(want))
	}
	overflow := uint64(ne.Uint32(hdr[12:]))
	if id+1+overflow > rf.meta.hwm {
		return nil, rf.damaged("page %d: %d overflow pages run past the file's %d pages", id, overflow, rf.meta.hwm)
	}
	buf := make([]byte, int64(1+overflow)*ps)
	if _, err := rf.f.ReadAt(buf, int64(id)*ps); err != nil {
		return nil, rf.damaged("page %d: %v", id, err)
	}
	return buf, nil
}

// pageTypes names the page types of a flag set.
func pageTypes(flags uint16) string {
	var names []string
	for _, t := range []struct {
		f    uint16
		name string
	}{{branchPageFlag, "branch"}, {leafPageFlag, "leaf"}, {metaPageFlag, "meta"}, {freelistPageFlag, "freelist"}} {
		if flags&t.f != 0 {
			names = append(names, t.name)
		}
	}
	return strings.Join(names, " or ")
}

// rawBucket is a bucket's header: its root page, or an inline page.
type rawBucket struct {
	root   uint64
	inline []byte // the inline page when root == 0
}

func (rf *rawFile) bucketOf(v []byte) (rawBucket, error) {
	if len(v) < 16 {
		return rawBucket{}, rf.damaged("bucket header of %d bytes", len(v))
	}
	b := rawBucket{root: ne.Uint64(v)}
	if b.root == 0 {
		b.inline = v[16:]
		if len(b.inline) < pageHeaderSize {
			return rawBucket{}, rf.damaged("inline bucket of %d bytes", len(b.inline))
		}
	}
	return b, nil
}

// eachBucket calls fn for every top-level bucket.
func (rf *rawFile) eachBucket(fn func(name []byte, b rawBucket) error) error {
	return rf.walk(rawBucket{root: rf.meta.root}, func(k, v []byte, flags uint32) error {
		if flags&bucketLeafFlag == 0 {
			return nil
		}
		b, err := rf.bucketOf(v)
		if err != nil {
			return err
		}
		return fn(k, b)
	}, nil)
}

// bucket returns the top-level bucket name (ok=false when absent).
func (rf *rawFile) bucket(name []byte) (rawBucket, bool, error) {
	v, flags, ok, err := rf.get(rawBucket{root: rf.meta.root}, name)
	if err != nil || !ok {
		return rawBucket{}, false, err
	}
	if flags&bucketLeafFlag == 0 {
		return rawBucket{}, false, rf.damaged("%q is a value, not a bucket", name)
	}
	b, err := rf.bucketOf(v)
	return b, err == nil, err
}

// elem is one element of a page: a leaf's key, value and flags, or a
// branch's key and child page.
type elem struct {
	key, value []byte
	flags      uint32
	child      uint64
}

// elems parses the elements of page p, checking each against its length.
func (rf *rawFile) elems(id uint64, p []byte) (leaf bool, out []elem, err error) {
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	leaf = flags == leafPageFlag
	if !leaf && flags != branchPageFlag {
		return false, nil, rf.damaged("page %d: type %#x is neither branch nor leaf", id, flags)
	}
	if pageHeaderSize+count*leafElemSize > len(p) {
		return false, nil, rf.damaged("page %d: %d elements do not fit", id, count)
	}
	out = make([]elem, count)
	for i := range out {
		off := pageHeaderSize + i*leafElemSize
		e := p[off : off+leafElemSize]
		if leaf {
			fl, pos, ks, vs := ne.Uint32(e), int64(ne.Uint32(e[4:])), int64(ne.Uint32(e[8:])), int64(ne.Uint32(e[12:]))
			start := int64(off) + pos
			if start+ks+vs > int64(len(p)) {
				return false, nil, rf.damaged("page %d: element %d points outside the page", id, i)
			}
			out[i] = elem{key: p[start : start+ks], value: p[start+ks : start+ks+vs], flags: fl}
		} else {
			pos, ks, child := int64(ne.Uint32(e)), int64(ne.Uint32(e[4:])), ne.Uint64(e[8:])
			start := int64(off) + pos
			if start+ks > int64(len(p)) {
				return false, nil, rf.damaged("page %d: element %d points outside the page", id, i)
			}
			out[i] = elem{key: p[start : start+ks], child: child}
		}
	}
	return leaf, out, nil
}

// rootPage returns the page of a bucket's root (or its inline page) and
// its id (0 for an inline page).
func (rf *rawFile) rootPage(b rawBucket) (uint64, []byte, error) {
	if b.root == 0 {
		return 0, b.inline, nil
	}
	p, err := rf.page(b.root, branchPageFlag|leafPageFlag)
	return b.root, p, err
}

// walk calls fn for every leaf element of bucket b in key order. When
// onErr is nil the first damaged page stops the walk with its error;
// otherwise onErr is told about each damaged subtree and the walk goes on
// with the next one (the tolerant mode of a salvage). A page reached twice
// is a cycle: it is reported, not followed.
func (rf *rawFile) walk(b rawBucket, fn func(k, v []byte, flags uint32) error, onErr func(error)) error {
	id, p, err := rf.rootPage(b)
	if err != nil {
		return rf.tolerate(err, onErr)
	}
	seen := map[uint64]bool{}
	return rf.walkPage(id, p, 0, seen, fn, onErr)
}

func (rf *rawFile) tolerate(err error, onErr func(error)) error {
	var fe *FileError
	if onErr != nil && errors.As(err, &fe) {
		onErr(err)
		return nil
	}
	return err
}

func (rf *rawFile) walkPage(id uint64, p []byte, depth int, seen map[uint64]bool, fn func(k, v []byte, flags uint32) error, onErr func(error)) error {
	if depth > maxTreeDepth {
		return rf.tolerate(rf.damaged("page %d: tree deeper than %d levels", id, maxTreeDepth), onErr)
	}
	leaf, es, err := rf.elems(id, p)
	if err != nil {
		return rf.tolerate(err, onErr)
	}
	for _, e := range es {
		if leaf {
			if err := fn(e.key, e.value, e.flags); err != nil {
				return err
			}
			continue
		}
		if seen[e.child] {
			if err := rf.tolerate(rf.damaged("page %d is referenced twice (a cycle)", e.child), onErr); err != nil {
				return err
			}
			continue
		}
		seen[e.child] = true
		cp, err := rf.page(e.child, branchPageFlag|leafPageFlag)
		if err != nil {
			if err := rf.tolerate(err, onErr); err != nil {
				return err
			}
			continue
		}
		if err := rf.walkPage(e.child, cp, depth+1, seen, fn, onErr); err != nil {
			return err
		}
	}
	return nil
}

// get looks key up in bucket b. A damaged page on the way is an error.
func (rf *rawFile) get(b rawBucket, key []byte) (value []byte, flags uint32, ok bool, err error) {
	id, p, err := rf.rootPage(b)
	if err != nil {
		return nil, 0, false, err
	}
	for depth := 0; ; depth++ {
		if depth > maxTreeDepth {
			return nil, 0, false, rf.damaged("page %d: tree deeper than %d levels", id, maxTreeDepth)
		}
		leaf, es, err := rf.elems(id, p)
		if err != nil {
			return nil, 0, false, err
		}
		if leaf {
			for _, e := range es {
				if bytes.Equal(e.key, key) {
					return e.value, e.flags, true, nil
				}
			}
			return nil, 0, false, nil
		}
		if len(es) == 0 {
			return nil, 0, false, rf.damaged("page %d: empty branch page", id)
		}
		// The child whose first key is the last one not after key.
		next := es[0].child
		for _, e := range es[1:] {
			if bytes.Compare(e.key, key) > 0 {
				break
			}
			next = e.child
		}
		id = next
		if p, err = rf.page(id, branchPageFlag|leafPageFlag); err != nil {
			return nil, 0, false, err
		}
	}
}
