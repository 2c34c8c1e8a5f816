package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"

	"github.com/verdictnet/verdict/internal/mmapfile"
	"github.com/verdictnet/verdict/internal/tensor"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the tensor data alignment when general.alignment is
// absent.
const DefaultAlignment = 32

// Limits on what Parse accepts; real files are far below them.
const (
	maxDims       = 4       // GGML_MAX_DIMS
	maxArrayDepth = 4       // nesting of arrays of arrays
	maxKeyLen     = 1 << 16 // bytes in a key or tensor name
)

// ErrNotFound is wrapped by the accessors when a metadata key is absent.
var ErrNotFound = errors.New("metadata key not found")

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	Name   string
	Type   tensor.Type
	Dims   []int // GGML order: Dims[0] is the row length
	Offset int64 // from the start of the data section
	Size   int64 // bytes
}

// File is a parsed GGUF file.
type File struct {
	Version    uint32
	Alignment  int
	KV         []KV // in file order
	Tensors    []TensorInfo
	DataOffset int64  // start of the tensor data section in the file
	Data       []byte // the whole file (mapped when opened with Open)

	index  map[string]int // key -> position in KV
	tindex map[string]int // tensor name -> position in Tensors
	closer *mmapfile.File
	head   *head // the string arrays read in place share it
}

// Open memory-maps and parses the named file. Errors start with the path.
// The returned File must be closed to release the mapping; tensors obtained
// from it must not be used after Close (its string arrays may: see Close).
func Open(path string) (*File, error) {
	mf, err := mmapfile.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(mf.Data)
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f.closer = mf
	return f, nil
}

// Close releases the memory map of a file from Open. It does nothing for a
// file from Parse. Tensors of the file must not be used afterwards; its
// metadata values may: the pages that hold its string arrays, which are
// read in place (StringArray), stay mapped until none of them is reachable.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	var err error
	if f.head != nil && f.head.arrays > 0 {
		var release func() error
		release, err = f.closer.CloseExceptHead(int(f.DataOffset))
		runtime.AddCleanup(f.head, func(release func() error) { release() }, release)
	} else {
		err = f.closer.Close()
	}
	f.closer = nil
	f.Data = nil
	return err
}

// Release tells the system that the whole pages of b, a part of the
// file's tensor data, are no longer needed (their contents were copied
// elsewhere): mmapfile.File.Release.
func (f *File) Release(b []byte) {
	if f.closer != nil {
		f.closer.Release(b)
	}
}

// reader decodes little-endian values from a byte slice, failing with
// errTruncated instead of reading past its end.
type reader struct {
	b    []byte
	pos  int
	err  error
	head *head // shared by the string arrays read in place
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.pos {
		r.fail("truncated: %s at offset %d needs %d bytes, file has %d", what, r.pos, n, len(r.b))
		return nil
	}
	p := r.b[r.pos : r.pos+n]
	r.pos += n
	return p
}

func (r *reader) remaining() int { return len(r.b) - r.pos }

func (r *reader) u8(what string) uint8 {
	if p := r.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if p := r.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// count reads a uint64 count and checks that count elements of at least
// minSize bytes each could fit in the rest of the file.
func (r *reader) count(what string, minSize int) int {
	n := r.u64(what)
	if r.err != nil {
		return 0
	}
	if minSize < 1 {
		minSize = 1
	}
	if n > uint64(r.remaining()/minSize) {
		r.fail("%s %d is more than the %d remaining bytes can hold", what, n, r.remaining())
		return 0
	}
	return int(n)
}

func (r *reader) str(what string) string {
	return string(r.rawStr(what))
}

// strings checks an array of n strings (every length within the file)
// and returns it read in place: its elements stay in the file's bytes,
// where a Go string per element would cost 16 bytes of header and a copy
// (the Llama 3 vocabulary's 128k tokens and 280k merges: 10 MB of heap).
func (r *reader) strings(n int) *StringArray {
	start := r.pos
	for i := 0; i < n && r.err == nil; i++ {
		r.rawStr("string")
	}
	if r.err != nil {
		return nil
	}
	r.head.arrays++
	return &StringArray{raw: r.b[start:r.pos:r.pos], n: n, head: r.head}
}

// rawStr reads a string's length and returns its bytes, aliasing the input.
func (r *reader) rawStr(what string) []byte {
	// The name of the length field is built only for its error: a
	// vocabulary's 300k strings would otherwise allocate it 300k times.
	name := "string length"
	if len(r.b)-r.pos < 8 {
		name = what + " length"
	}
	n := r.u64(name)
	if r.err != nil {
		return nil
	}
	if n > uint64(r.remaining()) {
		r.fail("truncated: %s at offset %d claims %d bytes, %d remain", what, r.pos, n, r.remaining())
		return nil
	}
	return r.take(int(n), what)
}

// Parse parses a GGUF file held in memory. Tensors returned by the File
// alias data.
func Parse(data []byte) (*File, error) {
	r := &reader{b: data, head: new(head)}
	magic := r.take(4, "magic")
	if r.err != nil {
		return nil, fmt.Errorf("not a GGUF file: %w", r.err)
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("not a GGUF file: magic %q, want %q", magic, Magic)
	}
	f := &File{Data: data, Alignment: DefaultAlignment, head: r.head}
	f.Version = r.u32("version")
	switch {
	case r.err != nil:
		return nil, r.err
	case f.Version == 1:
		return nil, fmt.Errorf("GGUF version 1 is not supported (only 2 and 3)")
	case f.Version == 2 || f.Version == 3:
	case f.Version&0xffff == 0 && f.Version != 0:
		return nil, fmt.Errorf("GGUF version %#x looks big-endian; only little-endian files are supported", f.Version)
	default:
		return nil, fmt.Errorf("unsupported GGUF version %d (only 2 and 3)", f.Version)
	}
	// A tensor info takes at least 8 (name length) + 4 (n_dims) + 8 (one
	// dim) + 4 (type) + 8 (offset) bytes; a KV at least 8 + 4 + 1.
	nTensors := r.u64("tensor count")
	nKV := r.u64("metadata count")
	if r.err != nil {
		return nil, r.err
	}
	if nKV > uint64(r.remaining()/13) {
		return nil, fmt.Errorf("truncated or corrupt: metadata count %d is more than the %d remaining bytes can hold", nKV, r.remaining())
	}
	if nTensors > uint64(r.remaining()/32) {
		return nil, fmt.Errorf("truncated or corrupt: tensor count %d is more than the %d remaining bytes can hold", nTensors, r.remaining())
	}
	f.KV = make([]KV, 0, int(nKV))
	f.index = make(map[string]int, int(nKV))
	for i := 0; i < int(nKV); i++ {
		key := r.str("metadata key")
		if r.err != nil {
			return nil, fmt.Errorf("metadata entry %d: %w", i, r.err)
		}
		if len(key) == 0 || len(key) > maxKeyLen {
			return nil, fmt.Errorf("metadata entry %d: key of %d bytes", i, len(key))
		}
		if _, dup := f.index[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		t := ValueType(r.u32("value type"))
		v := r.value(t, 0)
		if r.err != nil {
			return nil, fmt.Errorf("metadata %q: %w", key, r.err)
		}
		f.index[key] = len(f.KV)
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}
	if v, ok := f.Get("general.alignment"); ok {
		a, ok := v.asInt64()
		if !ok || v.Type != TypeUint32 {
			return nil, fmt.Errorf("general.alignment has type %s, want uint32", v.Type)
		}
		if a <= 0 || a > 1<<20 || a&(a-1) != 0 {
			return nil, fmt.Errorf("general.alignment %d is not a power of two up to 1 MiB", a)
		}
		f.Alignment = int(a)
	}
	f.Tensors = make([]TensorInfo, 0, int(nTensors))
	f.tindex = make(map[string]int, int(nTensors))
	for i := 0; i < int(nTensors); i++ {
		ti, err := r.tensorInfo()
		if err != nil {
			return nil, fmt.Errorf("tensor info %d: %w", i, err)
		}
		if _, dup := f.tindex[ti.Name]; dup {
			return nil, fmt.Errorf("tensor %q appears twice", ti.Name)
		}
		f.tindex[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	// The data section starts at the next multiple of the alignment.
	start := int64(r.pos)
	if rem := start % int64(f.Alignment); rem != 0 {
		start += int64(f.Alignment) - rem
	}
	f.DataOffset = start
	if len(f.Tensors) > 0 && start > int64(len(data)) {
		return nil, fmt.Errorf("truncated: tensor data would start at offset %d, file has %d bytes", start, len(data))
	}
	if err := f.checkTensorLayout(); err != nil {
		return nil, err
	}
	return f, nil
}

func (r *reader) tensorInfo() (TensorInfo, error) {
	var ti TensorInfo
	ti.Name = r.str("tensor name")
	if r.err != nil {
		return ti, r.err
	}
	if len(ti.Name) == 0 || len(ti.Name) > maxKeyLen {
		return ti, fmt.Errorf("tensor name of %d bytes", len(ti.Name))
	}
	nd := r.u32("dimension count")
	if r.err != nil {
		return ti, fmt.Errorf("tensor %s: %w", shown(ti.Name), r.err)
	}
	if nd == 0 || nd > maxDims {
		return ti, fmt.Errorf("tensor %s: %d dimensions, want 1 to %d", shown(ti.Name), nd, maxDims)
	}
	ti.Dims = make([]int, nd)
	for j := range ti.Dims {
		d := r.u64("dimension")
		if r.err == nil && (d == 0 || d > 1<<40) {
			return ti, fmt.Errorf("tensor %s: dimension %d is %d", shown(ti.Name), j, d)
		}
		ti.Dims[j] = int(d)
	}
	ti.Type = tensor.Type(r.u32("tensor type"))
	off := r.u64("tensor offset")
	if r.err != nil {
		return ti, fmt.Errorf("tensor %s: %w", shown(ti.Name), r.err)
	}
	if _, ok := ggmlTypes[ti.Type]; !ok {
		return ti, fmt.Errorf("tensor %s: unknown tensor type %d", shown(ti.Name), uint32(ti.Type))
	}
	size, err := TypeSize(ti.Type, ti.Dims)
	if err != nil {
		return ti, fmt.Errorf("tensor %s: shape %v: %w", shown(ti.Name), ti.Dims, err)
	}
	if off > 1<<60 {
		return ti, fmt.Errorf("tensor %s: offset %d out of range", shown(ti.Name), off)
	}
	ti.Offset = int64(off)
	ti.Size = size
	return ti, nil
}

// checkTensorLayout checks that every tensor is aligned, lies inside the
// file and overlaps no other.
func (f *File) checkTensorLayout() error {
	avail := int64(len(f.Data)) - f.DataOffset
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	var end int64
	prev := -1
	for _, i := range order {
		t := &f.Tensors[i]
		if t.Offset%int64(f.Alignment) != 0 {
			return fmt.Errorf("tensor %s: offset %d is not a multiple of the alignment %d", shown(t.Name), t.Offset, f.Alignment)
		}
		if t.Offset > avail || t.Size > avail-t.Offset {
			return fmt.Errorf("truncated: tensor %s needs bytes %d to %d of the data section, which has %d", shown(t.Name), t.Offset, t.Offset+t.Size, avail)
		}
		if prev >= 0 && t.Offset < end {
			return fmt.Errorf("tensor %s (offset %d) overlaps tensor %s (ends at %d)", shown(t.Name), t.Offset, shown(f.Tensors[prev].Name), end)
		}
		end = t.Offset + t.Size
		prev = i
	}
	return nil
}

// shown is a tensor name as error messages print it: quoted when it holds
// a control character, so that an error stays one line.
func shown(name string) string {
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] == 0x7f {
			return strconv.Quote(name)
		}
	}
	return name
}

// value reads one value of type t.
func (r *reader) value(t ValueType, depth int) Value {
	v := Value{Type: t}
	switch t {
	case TypeUint8:
		v.x = r.u8("uint8")
	case TypeInt8:
		v.x = int8(r.u8("int8"))
	case TypeUint16:
		v.x = r.u16("uint16")
	case TypeInt16:
		v.x = int16(r.u16("int16"))
	case TypeUint32:
		v.x = r.u32("uint32")
	case TypeInt32:
		v.x = int32(r.u32("int32"))
	case TypeFloat32:
		v.x = math.Float32frombits(r.u32("float32"))
	case TypeUint64:
		v.x = r.u64("uint64")
	case TypeInt64:
		v.x = int64(r.u64("int64"))
	case TypeFloat64:
		v.x = math.Float64frombits(r.u64("float64"))
	case TypeBool:
		b := r.u8("bool")
		if r.err == nil && b > 1 {
			r.fail("bool value %d is neither 0 nor 1", b)
		}
		v.x = b == 1
	case TypeString:
		v.x = r.str("string")
	case TypeArray:
		if depth >= maxArrayDepth {
			r.fail("arrays nested deeper than %d", maxArrayDepth)
			return v
		}
		v.Elem = ValueType(r.u32("array element type"))
		v.x = r.array(v.Elem, depth)
	default:
		r.fail("unknown value type %d", uint32(t))
	}
	return v
}

func (r *reader) array(elem ValueType, depth int) any {
	if r.err != nil {
		return nil
	}
	size := elem.scalarSize()
	switch {
	case size < 0:
		r.fail("unknown array element type %d", uint32(elem))
		return nil
	case size == 0:
		size = 8 // a string or an array takes at least its 8-byte length
	}
	n := r.count("array length", size)
	if r.err != nil {
		return nil
	}
	switch elem {
	case TypeString:
		return r.strings(n)
	case TypeArray:
		a := make([]Value, n)
		for i := range a {
			a[i] = r.value(TypeArray, depth+1)
			if i > 0 && r.err == nil && a[i].Elem != a[0].Elem {
				r.fail("array of arrays mixes element types %s and %s", a[0].Elem, a[i].Elem)
			}
		}
		return a
	}
	p := r.take(n*size, "array")
	if r.err != nil {
		return nil
	}
	le := binary.LittleEndian
	switch elem {
	case TypeUint8:
		return append([]uint8(nil), p...)
	case TypeInt8:
		a := make([]int8, n)
		for i := range a {
			a[i] = int8(p[i])
		}
		return a
	case TypeBool:
		a := make([]bool, n)
		for i := range a {
			if p[i] > 1 {
				r.fail("bool value %d is neither 0 nor 1", p[i])
				return nil
			}
			a[i] = p[i] == 1
		}
		return a
	case TypeUint16:
		a := make([]uint16, n)
		for i := range a {
			a[i] = le.Uint16(p[2*i:])
		}
		return a
	case TypeInt16:
		a := make([]int16, n)
		for i := range a {
			a[i] = int16(le.Uint16(p[2*i:]))
		}
		return a
	case TypeUint32:
		a := make([]uint32, n)
		for i := range a {
			a[i] = le.Uint32(p[4*i:])
		}
		return a
	case TypeInt32:
		a := make([]int32, n)
		for i := range a {
			a[i] = int32(le.Uint32(p[4*i:]))
		}
		return a
	case TypeFloat32:
		a := make([]float32, n)
		for i := range a {
			a[i] = math.Float32frombits(le.Uint32(p[4*i:]))
		}
		return a
	case TypeUint64:
		a := make([]uint64, n)
		for i := range a {
			a[i] = le.Uint64(p[8*i:])
		}
		return a
	case TypeInt64:
		a := make([]int64, n)
		for i := range a {
			a[i] = int64(le.Uint64(p[8*i:]))
		}
		return a
	case TypeFloat64:
		a := make([]float64, n)
		for i := range a {
			a[i] = math.Float64frombits(le.Uint64(p[8*i:]))
		}
		return a
	}
	return nil
}
