package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"

	"github.com/verdictnet/verdict/internal/tensor"
)

// TensorData is one tensor to write: either Data holds its bytes, or Source
// streams exactly its size (computed from Type and Dims) to the writer it is
// given, so that large tensors need not be held in memory.
type TensorData struct {
	Name   string
	Type   tensor.Type
	Dims   []int // GGML order
	Data   []byte
	Source func(w io.Writer) error
}

// Write writes a GGUF v3 file with the given metadata (in order) and
// tensors (in order, each aligned to general.alignment, 32 by default).
func Write(w io.Writer, kvs []KV, tensors []TensorData) error {
	align := int64(DefaultAlignment)
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if kv.Key == "" {
			return fmt.Errorf("gguf write: empty metadata key")
		}
		if seen[kv.Key] {
			return fmt.Errorf("gguf write: metadata key %q given twice", kv.Key)
		}
		seen[kv.Key] = true
		if err := checkValue(kv.Value); err != nil {
			return fmt.Errorf("gguf write: metadata %s: %w", kv.Key, err)
		}
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.x.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("gguf write: general.alignment must be a power-of-two uint32")
			}
			align = int64(a)
		}
	}
	sizes := make([]int64, len(tensors))
	offsets := make([]int64, len(tensors))
	names := make(map[string]bool, len(tensors))
	var off int64
	for i, t := range tensors {
		if t.Name == "" || names[t.Name] {
			return fmt.Errorf("gguf write: tensor name %q empty or repeated", t.Name)
		}
		names[t.Name] = true
		if len(t.Dims) == 0 || len(t.Dims) > maxDims {
			return fmt.Errorf("gguf write: tensor %s: %d dimensions", t.Name, len(t.Dims))
		}
		size, err := TypeSize(t.Type, t.Dims)
		if err != nil {
			return fmt.Errorf("gguf write: tensor %s: %w", t.Name, err)
		}
		if (t.Source == nil) == (t.Data == nil) && size > 0 {
			return fmt.Errorf("gguf write: tensor %s: give exactly one of Data and Source", t.Name)
		}
		if t.Source == nil && int64(len(t.Data)) != size {
			return fmt.Errorf("gguf write: tensor %s: %d bytes of data, shape %v of %s needs %d", t.Name, len(t.Data), t.Dims, TypeName(t.Type), size)
		}
		sizes[i], offsets[i] = size, off
		off += pad(size, align)
	}

	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	e := &encoder{w: cw}
	e.raw([]byte(Magic))
	e.u32(3)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	for _, kv := range kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			e.u64(uint64(d))
		}
		e.u32(uint32(t.Type))
		e.u64(uint64(offsets[i]))
	}
	if len(tensors) > 0 {
		// Like llama.cpp, a file without tensors has no padding at its end.
		e.zeros(pad(cw.n, align) - cw.n)
	}
	for i, t := range tensors {
		if e.err != nil {
			break
		}
		start := cw.n
		if t.Source != nil {
			if err := t.Source(cw); err != nil {
				return fmt.Errorf("gguf write: tensor %s: %w", t.Name, err)
			}
		} else {
			e.raw(t.Data)
		}
		if e.err == nil && cw.err == nil && cw.n-start != sizes[i] {
			return fmt.Errorf("gguf write: tensor %s: source wrote %d bytes, want %d", t.Name, cw.n-start, sizes[i])
		}
		e.zeros(pad(sizes[i], align) - sizes[i])
	}
	if e.err == nil {
		e.err = cw.err
	}
	if e.err != nil {
		return fmt.Errorf("gguf write: %w", e.err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf write: %w", err)
	}
	return nil
}

func pad(n, align int64) int64 { return (n + align - 1) / align * align }

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(p []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(p)
	}
}

func (e *encoder) zeros(n int64) {
	var z [64]byte
	for n > 0 && e.err == nil {
		k := min(n, int64(len(z)))
		e.raw(z[:k])
		n -= k
	}
}

func (e *encoder) u8(x uint8) { e.buf[0] = x; e.raw(e.buf[:1]) }
func (e *encoder) u16(x uint16) {
	binary.LittleEndian.PutUint16(e.buf[:], x)
	e.raw(e.buf[:2])
}
func (e *encoder) u32(x uint32) {
	binary.LittleEndian.PutUint32(e.buf[:], x)
	e.raw(e.buf[:4])
}
func (e *encoder) u64(x uint64) {
	binary.LittleEndian.PutUint64(e.buf[:], x)
	e.raw(e.buf[:8])
}
func (e *encoder) str(s string) { e.u64(uint64(len(s))); e.raw([]byte(s)) }

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// checkValue verifies that a value's Go contents match its declared type.
func checkValue(v Value) error {
	ok := false
	switch v.Type {
	case TypeUint8:
		_, ok = v.x.(uint8)
	case TypeInt8:
		_, ok = v.x.(int8)
	case TypeUint16:
		_, ok = v.x.(uint16)
	case TypeInt16:
		_, ok = v.x.(int16)
	case TypeUint32:
		_, ok = v.x.(uint32)
	case TypeInt32:
		_, ok = v.x.(int32)
	case TypeFloat32:
		_, ok = v.x.(float32)
	case TypeUint64:
		_, ok = v.x.(uint64)
	case TypeInt64:
		_, ok = v.x.(int64)
	case TypeFloat64:
		_, ok = v.x.(float64)
	case TypeBool:
		_, ok = v.x.(bool)
	case TypeString:
		_, ok = v.x.(string)
	case TypeArray:
		elem, isSlice := sliceElem(v.x)
		if !isSlice || elem != v.Elem {
			return fmt.Errorf("array of Go type %T does not match element type %s", v.x, v.Elem)
		}
		if vs, isv := v.x.([]Value); isv {
			for _, sub := range vs {
				if sub.Type != TypeArray || sub.Elem != vs[0].Elem {
					return errors.New("array of arrays holds a non-array or mixes element types")
				}
				if err := checkValue(sub); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if !ok {
		return fmt.Errorf("value of Go type %T does not match GGUF type %s", v.x, v.Type)
	}
	return nil
}

func (e *encoder) value(v Value) {
	switch x := v.x.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	case bool:
		e.u8(b2u(x))
	case string:
		e.str(x)
	default:
		e.array(v)
	}
}

func (e *encoder) array(v Value) {
	e.u32(uint32(v.Elem))
	n := v.Len()
	e.u64(uint64(n))
	if a, ok := v.x.(*StringArray); ok {
		defer runtime.KeepAlive(a)
		e.raw(a.raw) // already in the file's encoding
		return
	}
	for i := 0; i < n; i++ {
		x := elemAt(v.x, i)
		if sub, ok := x.(Value); ok {
			e.array(sub)
			continue
		}
		e.value(Value{Type: v.Elem, x: x})
	}
}

// Rewrite encodes f again, its key-values and tensors first passed through
// the edit functions (either may be nil): a variant of a file, as tests
// derive bad or unusual models from good ones.
func Rewrite(w io.Writer, f *File, editKV func([]KV) []KV, editTensors func([]TensorData) []TensorData) error {
	kvs := append([]KV(nil), f.KV...)
	ts := make([]TensorData, 0, len(f.Tensors))
	for _, ti := range f.Tensors {
		t, err := f.Tensor(ti.Name)
		if err != nil {
			return fmt.Errorf("gguf: rewriting: %w", err)
		}
		ts = append(ts, TensorData{Name: t.Name, Type: t.Type, Dims: t.Dims, Data: t.Data})
	}
	if editKV != nil {
		kvs = editKV(kvs)
	}
	if editTensors != nil {
		ts = editTensors(ts)
	}
	return Write(w, kvs, ts)
}
