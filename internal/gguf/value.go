package gguf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ValueType is the type of a metadata value, numbered as in the GGUF
// specification.
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64", "int64", "float64"}

func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// scalarSize is the encoded size of a fixed-size scalar (0 for string and
// array, -1 for an invalid type).
func (t ValueType) scalarSize() int {
	switch t {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64:
		return 8
	case TypeString, TypeArray:
		return 0
	}
	return -1
}

// Value is one typed metadata value.
//
// Scalars hold the Go type of the same name (uint8 ... float64, bool,
// string). Arrays hold a slice of their element type ([]uint8 ... []string),
// or []Value for arrays of arrays; arrays of strings read from a file hold
// a *StringArray, which Any returns as a []string.
type Value struct {
	Type ValueType
	Elem ValueType // element type, when Type is TypeArray
	x    any
}

// KV is one metadata key with its value.
type KV struct {
	Key   string
	Value Value
}

// Any returns the value as a Go value: a scalar, a typed slice or []Value.
// An array of strings read from a file is copied into a []string.
func (v Value) Any() any {
	if a, ok := v.x.(*StringArray); ok {
		return a.Strings()
	}
	return v.x
}

// Len returns the number of elements of an array value, or 0.
func (v Value) Len() int {
	switch a := v.x.(type) {
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []bool:
		return len(a)
	case []string:
		return len(a)
	case *StringArray:
		return a.n
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	case []Value:
		return len(a)
	}
	return 0
}

// Constructors for metadata values (used with Write).

// Uint8 returns a uint8 value.
func Uint8(x uint8) Value { return Value{Type: TypeUint8, x: x} }

// Int8 returns an int8 value.
func Int8(x int8) Value { return Value{Type: TypeInt8, x: x} }

// Uint16 returns a uint16 value.
func Uint16(x uint16) Value { return Value{Type: TypeUint16, x: x} }

// Int16 returns an int16 value.
func Int16(x int16) Value { return Value{Type: TypeInt16, x: x} }

// Uint32 returns a uint32 value.
func Uint32(x uint32) Value { return Value{Type: TypeUint32, x: x} }

// Int32 returns an int32 value.
func Int32(x int32) Value { return Value{Type: TypeInt32, x: x} }

// Uint64 returns a uint64 value.
func Uint64(x uint64) Value { return Value{Type: TypeUint64, x: x} }

// Int64 returns an int64 value.
func Int64(x int64) Value { return Value{Type: TypeInt64, x: x} }

// Float32 returns a float32 value.
func Float32(x float32) Value { return Value{Type: TypeFloat32, x: x} }

// Float64 returns a float64 value.
func Float64(x float64) Value { return Value{Type: TypeFloat64, x: x} }

// Bool returns a bool value.
func Bool(x bool) Value { return Value{Type: TypeBool, x: x} }

// String returns a string value.
func String(x string) Value { return Value{Type: TypeString, x: x} }

// Array returns an array value from a slice of a scalar Go type ([]uint8 ...
// []float64, []bool, []string) or from []Value whose elements all have the
// same type. It panics on any other argument: it is meant for literal
// construction by programs, not for untrusted input.
func Array(slice any) Value {
	elem, ok := sliceElem(slice)
	if !ok {
		panic(fmt.Sprintf("gguf.Array: unsupported slice type %T", slice))
	}
	if a, isv := slice.([]Value); isv {
		for _, v := range a {
			if v.Type != TypeArray || v.Elem != a[0].Elem {
				panic("gguf.Array: []Value elements must be arrays of one element type")
			}
		}
	}
	return Value{Type: TypeArray, Elem: elem, x: slice}
}

// sliceElem returns the GGUF element type of a Go slice.
func sliceElem(slice any) (ValueType, bool) {
	switch slice.(type) {
	case []uint8:
		return TypeUint8, true
	case []int8:
		return TypeInt8, true
	case []uint16:
		return TypeUint16, true
	case []int16:
		return TypeInt16, true
	case []uint32:
		return TypeUint32, true
	case []int32:
		return TypeInt32, true
	case []float32:
		return TypeFloat32, true
	case []bool:
		return TypeBool, true
	case []string, *StringArray:
		return TypeString, true
	case []uint64:
		return TypeUint64, true
	case []int64:
		return TypeInt64, true
	case []float64:
		return TypeFloat64, true
	case []Value:
		return TypeArray, true
	}
	return 0, false
}

// asInt64 converts an integer value of any width to int64.
func (v Value) asInt64() (int64, bool) {
	switch x := v.x.(type) {
	case uint8:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// asFloat64 converts a float or integer value to float64.
func (v Value) asFloat64() (float64, bool) {
	switch x := v.x.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.asInt64(); ok {
		return float64(i), true
	}
	return 0, false
}

// Format renders the value for people, abbreviating arrays longer than max
// elements (max <= 0 means no limit).
func (v Value) Format(max int) string {
	if v.Type != TypeArray {
		return formatScalar(v.x)
	}
	n := v.Len()
	shown := n
	if max > 0 && shown > max {
		shown = max
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[%s x %d]", v.Elem, n)
	if shown == 0 {
		return b.String()
	}
	b.WriteString(" [")
	a, lazy := v.x.(*StringArray)
	if lazy {
		for i, s := range a.All() {
			if i == shown {
				break
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(string(s)))
		}
	}
	for i := 0; i < shown && !lazy; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(formatScalar(elemAt(v.x, i)))
	}
	if shown < n {
		b.WriteString(", ...")
	}
	b.WriteString("]")
	return b.String()
}

func formatScalar(x any) string {
	switch x := x.(type) {
	case string:
		return strconv.Quote(x)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case Value:
		return x.Format(4)
	}
	return fmt.Sprint(x)
}

func elemAt(slice any, i int) any {
	switch a := slice.(type) {
	case []uint8:
		return a[i]
	case []int8:
		return a[i]
	case []uint16:
		return a[i]
	case []int16:
		return a[i]
	case []uint32:
		return a[i]
	case []int32:
		return a[i]
	case []float32:
		return a[i]
	case []bool:
		return a[i]
	case []string:
		return a[i]
	case *StringArray:
		return a.at(i)
	case []uint64:
		return a[i]
	case []int64:
		return a[i]
	case []float64:
		return a[i]
	case []Value:
		return a[i]
	}
	return nil
}
