package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestConfigFlag(t *testing.T) {
	for _, c := range []struct {
		name, config string
		args         []string
		want         string // s,n,b,list after applying, or the error's substring
		err          bool
	}{
		{"values", `{"s":"x","n":7,"b":true,"list":["a","b"]}`, nil, "x,7,true,[a b]", false},
		{"command line wins", `{"s":"x","n":7}`, []string{"-s", "y"}, "y,7,false,[]", false},
		{"unknown flag", `{"nope":1}`, nil, `unknown flag "nope"`, true},
		{"bad value", `{"n":"seven"}`, nil, `flag "n"`, true},
		{"not an object", `[1,2]`, nil, "JSON object", true},
		{"nested", `{"s":{"a":1}}`, nil, "unsupported value", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.json")
			os.WriteFile(path, []byte(c.config), 0o644)
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			s := fs.String("s", "", "")
			n := fs.Int("n", 0, "")
			b := fs.Bool("b", false, "")
			var list nodeModels
			fs.Var(&list, "list", "")
			apply := configFlag(fs)
			if err := fs.Parse(append([]string{"-config", path}, c.args...)); err != nil {
				t.Fatal(err)
			}
			err := apply()
			if c.err {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one containing %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join([]string{*s, strconv.Itoa(*n), strconv.FormatBool(*b), "[" + list.String() + "]"}, ",")
			if got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}
