// Command configdocs writes docs/config.md's key tables and
// board/callbox.example.toml from the keys declared in board/config
// (`make config-docs`, or `go generate ./board/config`).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/callbox/callbox/board/config"
)

func main() {
	docs := flag.String("docs", "docs/config.md", "docs/config.md to update between its markers")
	example := flag.String("example", "board/callbox.example.toml", "example file to write")
	flag.Parse()
	if err := run(*docs, *example); err != nil {
		fmt.Fprintln(os.Stderr, "configdocs:", err)
		os.Exit(1)
	}
}

func run(docs, example string) error {
	old, err := os.ReadFile(docs)
	if err != nil {
		return err
	}
	text, err := config.SpliceDocs(string(old))
	if err != nil {
		return err
	}
	if err := os.WriteFile(docs, []byte(text), 0o644); err != nil {
		return err
	}
	return os.WriteFile(example, []byte(config.ExampleTOML()), 0o644)
}
