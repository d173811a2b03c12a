package image

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the source tree's top directory (where go.mod is).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("no go.mod two levels up from test/image: %v", err)
	}
	return dir
}

// externalTree is the BR2_EXTERNAL tree.
func externalTree(t testing.TB) string {
	return filepath.Join(repoRoot(t), "buildroot")
}

// boardDir is buildroot/board/callbox.
func boardDir(t testing.TB) string {
	return filepath.Join(externalTree(t), "board", "callbox")
}

// run runs a command and fails the test with its output when it fails.
func run(t testing.TB, env []string, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// readFile reads a file or fails the test.
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeFile writes a file (creating its directory) or fails the test.
func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies src to dst (creating dst's directory), keeping the mode.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, readFile(t, src), fi.Mode().Perm())
}

// copyTree copies a directory tree (regular files, directories and
// symbolic links) from src into dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(to, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// installedConfigRe finds, in callbox.mk, the source-tree file the package
// installs as the image's default /etc/callbox/callbox.toml.
var installedConfigRe = regexp.MustCompile(`\$\(@D\)/(\S+)\s*\\?\s*\$\(TARGET_DIR\)/etc/callbox/callbox\.toml`)

// exampleConfig is the path of that file in this tree.
func exampleConfig(t testing.TB) string {
	t.Helper()
	mk := readFile(t, filepath.Join(externalTree(t), "package", "callbox", "callbox.mk"))
	m := installedConfigRe.FindStringSubmatch(mk)
	if m == nil {
		t.Fatal("callbox.mk installs no /etc/callbox/callbox.toml from the source tree")
	}
	return filepath.Join(repoRoot(t), filepath.FromSlash(m[1]))
}
