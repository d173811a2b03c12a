package vm

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// initramfs collects files for a newc cpio archive, the format the kernel
// unpacks into its initial root file system. Writing it in Go avoids a
// staging directory and the cpio/find tools.
type initramfs struct {
	files map[string]entry // guest path (no leading slash) -> content
}

type entry struct {
	mode uint32 // full st_mode: type and permissions
	data []byte
	src  string // host file, read at write time
	link string // symlink target
}

func newInitramfs() *initramfs { return &initramfs{files: map[string]entry{}} }

func clean(p string) string { return strings.TrimPrefix(path.Clean("/"+p), "/") }

func (r *initramfs) dir(p string) {
	p = clean(p)
	for p != "" && p != "." {
		if _, ok := r.files[p]; !ok {
			r.files[p] = entry{mode: 0o040755}
		}
		p = path.Dir(p)
		if p == "." {
			break
		}
	}
}

func (r *initramfs) add(p string, e entry) {
	p = clean(p)
	r.dir(path.Dir(p))
	r.files[p] = e
}

// file adds host file src at guest path p (symlinks on the host are
// followed: the guest gets the content).
func (r *initramfs) file(p, src string, perm uint32) {
	r.add(p, entry{mode: 0o100000 | perm, src: src})
}

func (r *initramfs) bytes(p string, b []byte, perm uint32) {
	r.add(p, entry{mode: 0o100000 | perm, data: b})
}

func (r *initramfs) symlink(p, target string) { r.add(p, entry{mode: 0o120777, link: target}) }

// write emits the archive, gzip-compressed (fastest level: the kernel
// decompresses it once, and TCG makes every cycle in the guest dear, but
// the host time to compress a few tens of MB matters more).
func (r *initramfs) write(w io.Writer) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(r.files))
	for n := range r.files {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children
	ino := uint32(1)
	for _, n := range names {
		e := r.files[n]
		data := e.data
		switch {
		case e.src != "":
			if data, err = os.ReadFile(e.src); err != nil {
				return fmt.Errorf("initramfs: %s: %w", n, err)
			}
		case e.link != "":
			data = []byte(e.link)
		}
		if err := cpioRecord(zw, ino, n, e.mode, data); err != nil {
			return err
		}
		ino++
	}
	if err := cpioRecord(zw, 0, "TRAILER!!!", 0, nil); err != nil {
		return err
	}
	return zw.Close()
}

func cpioRecord(w io.Writer, ino uint32, name string, mode uint32, data []byte) error {
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	buf := make([]byte, 0, len(hdr)+len(name)+8+len(data)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	buf = append(buf, data...)
	for len(buf)%4 != 0 {
		buf = append(buf, 0)
	}
	_, err := w.Write(buf)
	return err
}
