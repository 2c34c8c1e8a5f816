package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
)

// configFlag adds --config to fs: a JSON object from flag name to value
// (string, number or boolean; an array for a repeatable flag) whose values
// apply to the flags not given on the command line. Call the returned
// function after fs.Parse.
func configFlag(fs *flag.FlagSet) func() error {
	path := fs.String("config", "", "JSON file of flag values, {\"flag\": value}; flags on the command line win")
	return func() error {
		if *path == "" {
			return nil
		}
		b, err := os.ReadFile(*path)
		if err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("--config %s: want a JSON object of flag values: %w", *path, err)
		}
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range m {
			if name == "config" || fs.Lookup(name) == nil {
				return fmt.Errorf("--config %s: unknown flag %q", *path, name)
			}
			if given[name] {
				continue
			}
			vals := []any{v}
			if a, ok := v.([]any); ok {
				vals = a
			}
			for _, x := range vals {
				var s string
				switch x := x.(type) {
				case string:
					s = x
				case float64:
					s = strconv.FormatFloat(x, 'f', -1, 64)
				case bool:
					s = strconv.FormatBool(x)
				default:
					return fmt.Errorf("--config %s: flag %q: unsupported value %v", *path, name, x)
				}
				if err := fs.Set(name, s); err != nil {
					return fmt.Errorf("--config %s: flag %q: %w", *path, name, err)
				}
			}
		}
		return nil
	}
}
