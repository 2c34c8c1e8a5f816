package kernels

import "fmt"

// DotMany writes out[t] = Dot(q, keys[t*stride+off : t*stride+off+len(q)])
// for every t < len(out): the attention scores of one query against cached
// keys stored with row stride `stride`.
func DotMany(out, q, keys []float32, stride, off int) {
	n, hd := len(out), len(q)
	if n == 0 {
		return
	}
	checkRows("DotMany", len(keys), n, stride, off, hd)
	if hasFast && hd > 0 && stride >= 0 && off >= 0 {
		dotManyFast(out, q, keys, stride, off)
		return
	}
	for t := range out {
		out[t] = DotRef(q, keys[t*stride+off:t*stride+off+hd])
	}
}

// WeightedSum sets out[i] = 0 and then, for t = 0, 1, ..., len(a)-1 in
// order, out[i] = out[i] + float32(a[t] * values[t*stride+off+i]): the
// attention value sum (AxpyInto over the positions), one call per head.
func WeightedSum(out, a, values []float32, stride, off int) {
	n, hd := len(a), len(out)
	if n > 0 {
		checkRows("WeightedSum", len(values), n, stride, off, hd)
	}
	i := 0
	if hasFast && n > 0 && stride >= 0 && off >= 0 {
		i = weightedSumFast(out, a, values, stride, off)
	}
	for j := i; j < hd; j++ {
		out[j] = 0
	}
	for t := 0; t < n; t++ {
		v := values[t*stride+off : t*stride+off+hd]
		for j := i; j < hd; j++ {
			out[j] = out[j] + float32(a[t]*v[j])
		}
	}
}

// checkRows panics unless rows t < n of width hd at t*stride+off lie in a
// slice of length l: a caller's bug, like an index out of range.
func checkRows(fn string, l, n, stride, off, hd int) {
	ok := stride >= 0 && off >= 0 && hd >= 0 && n >= 1 && off <= l-hd
	if ok && stride > 0 {
		ok = n-1 <= (l-off-hd)/stride
	}
	if !ok {
		panic(fmt.Sprintf("kernels.%s: %d rows of %d at stride %d, offset %d do not fit in %d values", fn, n, hd, stride, off, l))
	}
}

// WeightedSumGroup continues the attention value sums of group heads that
// share one run of n cached values: with hd = len(out)/group, head h's
// outputs out[h*hd:(h+1)*hd] and its weights a[h*aStride:h*aStride+n], for
// t = 0, 1, ..., n-1 in order,
//
//	out[h*hd+i] = out[h*hd+i] + float32(a[h*aStride+t] * values[t*stride+i])
//
// starting from what out holds (WeightedSum starts from 0), so that a value
// sum over a cache stored in several runs is one call per run. Each value
// vector is read once for all the heads.
func WeightedSumGroup(out []float32, group int, a []float32, aStride, n int, values []float32, stride int) {
	hd := groupShape("WeightedSumGroup", len(out), group, len(a), aStride, n, len(values), stride)
	if hd == 0 {
		return
	}
	i := 0
	if hasFast {
		i = weightedSumGroupFast(out, group, hd, a, aStride, n, values, stride)
	}
	if i == hd {
		return
	}
	for h := 0; h < group; h++ {
		o, w := out[h*hd:(h+1)*hd], a[h*aStride:h*aStride+n]
		for t, at := range w {
			v := values[t*stride : t*stride+hd]
			for j := i; j < hd; j++ {
				o[j] = o[j] + float32(at*v[j])
			}
		}
	}
}

// groupShape returns the head size of a WeightedSumGroup call (0: nothing
// to do) and panics, as an index out of range would, when its slices do
// not hold what its arguments say: a caller's bug.
func groupShape(fn string, outs, group, as, aStride, n, vs, stride int) int {
	if group < 1 || outs%group != 0 || aStride < 0 {
		panic(fmt.Sprintf("kernels.%s: %d outputs in %d heads, weight stride %d", fn, outs, group, aStride))
	}
	hd := outs / group
	if n <= 0 || hd == 0 {
		return 0
	}
	checkRows(fn, as, group, aStride, 0, n)
	checkRows(fn, vs, n, stride, 0, hd)
	return hd
}

// WeightedSumGroupRef is the scalar reference of WeightedSumGroup (for
// tests of the fast paths): the loop of its documentation.
func WeightedSumGroupRef(out []float32, group int, a []float32, aStride, n int, values []float32, stride int) {
	hd := len(out) / group
	for t := 0; t < n; t++ {
		for h := 0; h < group; h++ {
			for i := 0; i < hd; i++ {
				out[h*hd+i] = out[h*hd+i] + float32(a[h*aStride+t]*values[t*stride+i])
			}
		}
	}
}
