package fifomap_test

import (
	"fmt"
	"testing"

	"github.com/verdictnet/verdict/internal/fifomap"
)

func TestMap(t *testing.T) {
	for _, max := range []int{1, 2, 7} {
		m := fifomap.New[int, int](max)
		for i := range 3*max + 2 {
			m.Put(i, 10*i)
			if m.Len() != min(i+1, max) {
				t.Fatalf("max %d, %d put: %d held", max, i+1, m.Len())
			}
			// The last max keys put are held, none older.
			for j := 0; j <= i; j++ {
				v, ok := m.Get(j)
				if want := j > i-max; ok != want || ok && v != 10*j {
					t.Fatalf("max %d, %d put: key %d: %d, %v", max, i+1, j, v, ok)
				}
			}
		}
		// Putting a held key again replaces its value and drops nothing.
		last := 3*max + 1
		m.Put(last, -1)
		if v, _ := m.Get(last); v != -1 || m.Len() != max {
			t.Fatalf("max %d: replaced value %d, %d held", max, v, m.Len())
		}
		if _, ok := m.Get(last - max + 1); !ok {
			t.Fatalf("max %d: replacing a value dropped the oldest key", max)
		}
	}
	if m := fifomap.New[string, int](0); func() bool { m.Put("a", 1); _, ok := m.Get("a"); return ok }() != true {
		t.Fatal("a map of max 0 holds no key")
	}
}

func ExampleMap() {
	m := fifomap.New[string, int](2)
	m.Put("a", 1)
	m.Put("b", 2)
	m.Put("c", 3) // "a" goes
	_, a := m.Get("a")
	c, _ := m.Get("c")
	fmt.Println(a, c, m.Len())
	// Output: false 3 2
}
