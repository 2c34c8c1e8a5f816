package gguf

import (
	"fmt"
	"math"

	"github.com/verdictnet/verdict/internal/tensor"
)

// Get returns the value of a metadata key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.index[key]
	if !ok {
		return Value{}, false
	}
	return f.KV[i].Value, true
}

// Has reports whether a metadata key is present.
func (f *File) Has(key string) bool {
	_, ok := f.index[key]
	return ok
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Get(key)
	if !ok {
		return Value{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return v, nil
}

func typeErr(key string, v Value, want string) error {
	t := v.Type.String()
	if v.Type == TypeArray {
		t = "array of " + v.Elem.String()
	}
	return fmt.Errorf("metadata %s has type %s, want %s", key, t, want)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.x.(string)
	if !ok {
		return "", typeErr(key, v, "string")
	}
	return s, nil
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.x.(bool)
	if !ok {
		return false, typeErr(key, v, "bool")
	}
	return b, nil
}

// Int64 returns an integer value of any GGUF integer type.
func (f *File) Int64(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.asInt64()
	if !ok {
		if v.Type == TypeUint64 {
			return 0, fmt.Errorf("metadata %s: value %v out of range", key, v.x)
		}
		return 0, typeErr(key, v, "an integer")
	}
	return i, nil
}

// Int returns an integer value of any GGUF integer type that fits in an
// int32 (sizes and token ids).
func (f *File) Int(key string) (int, error) {
	i, err := f.Int64(key)
	if err != nil {
		return 0, err
	}
	if i < math.MinInt32 || i > math.MaxInt32 {
		return 0, fmt.Errorf("metadata %s: value %d out of range", key, i)
	}
	return int(i), nil
}

// Uint32 returns an integer value of any GGUF integer type that fits in a
// uint32.
func (f *File) Uint32(key string) (uint32, error) {
	i, err := f.Int64(key)
	if err != nil {
		return 0, err
	}
	if i < 0 || i > math.MaxUint32 {
		return 0, fmt.Errorf("metadata %s: value %d out of range for uint32", key, i)
	}
	return uint32(i), nil
}

// Float32 returns a float32 value; float64 and integer values are converted.
func (f *File) Float32(key string) (float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	x, ok := v.asFloat64()
	if !ok {
		return 0, typeErr(key, v, "a number")
	}
	return float32(x), nil
}

// Strings returns an array of strings, copied out of the file (their
// bytes in one allocation).
func (f *File) Strings(key string) ([]string, error) {
	a, err := f.StringArray(key)
	if err != nil {
		return nil, err
	}
	return a.Strings(), nil
}

// StringArray returns an array of strings read in place (see StringArray).
func (f *File) StringArray(key string) (*StringArray, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	a, ok := v.x.(*StringArray)
	if !ok {
		return nil, typeErr(key, v, "array of string")
	}
	return a, nil
}

// Float32s returns an array of float32 (float64 arrays are converted).
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	switch a := v.x.(type) {
	case []float32:
		return a, nil
	case []float64:
		out := make([]float32, len(a))
		for i, x := range a {
			out[i] = float32(x)
		}
		return out, nil
	}
	return nil, typeErr(key, v, "array of float32")
}

// Int32s returns an array of integers of any GGUF integer type whose values
// all fit in an int32.
func (f *File) Int32s(key string) ([]int32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if v.Type != TypeArray {
		return nil, typeErr(key, v, "array of int32")
	}
	if a, ok := v.x.([]int32); ok {
		return a, nil
	}
	n := v.Len()
	out := make([]int32, n)
	for i := 0; i < n; i++ {
		e := Value{Type: v.Elem, x: elemAt(v.x, i)}
		x, ok := e.asInt64()
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			if !ok && v.Elem != TypeUint64 {
				return nil, typeErr(key, v, "array of int32")
			}
			return nil, fmt.Errorf("metadata %s: element %d out of range for int32", key, i)
		}
		out[i] = int32(x)
	}
	return out, nil
}

// TensorInfo returns the description of the named tensor.
func (f *File) TensorInfo(name string) (TensorInfo, bool) {
	i, ok := f.tindex[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// Tensor returns the named tensor with its data aliasing the file. It fails
// when the tensor is absent.
func (f *File) Tensor(name string) (*tensor.Tensor, error) {
	ti, ok := f.TensorInfo(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s not found", name)
	}
	start := f.DataOffset + ti.Offset
	return &tensor.Tensor{
		Name: ti.Name,
		Type: ti.Type,
		Dims: append([]int(nil), ti.Dims...),
		Data: f.Data[start : start+ti.Size : start+ti.Size],
	}, nil
}
