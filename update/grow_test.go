package update

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

// memDisk is a disk image in memory.
type memDisk []byte

func (d memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, os.ErrInvalid
	}
	return copy(p, d[off:]), nil
}

func (d memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(d)) {
		return 0, os.ErrInvalid
	}
	return copy(d[off:], p), nil
}

func putEntry(b []byte, typ byte, start, count uint32) {
	b[4] = typ
	binary.LittleEndian.PutUint32(b[8:], start)
	binary.LittleEndian.PutUint32(b[12:], count)
}

func sign(b []byte) { b[510], b[511] = 0x55, 0xaa }

// cardMBR is the Raspberry Pi layout in small: 1, 2, 3 primary; 4
// extended holding 5 and 6; sizes in sectors.
func cardMBR(sectors int) memDisk {
	d := make(memDisk, sectors*sector)
	putEntry(d[446:], 0x0c, 8, 8)
	putEntry(d[462:], 0x0c, 16, 8)
	putEntry(d[478:], 0x0c, 24, 8)
	putEntry(d[494:], 0x0f, 32, 24) // extended: 32..56
	sign(d[:sector])
	// EBR at 32: logical 5 at 32+2, 6 sectors; next EBR at ext+12.
	ebr := d[32*sector:]
	putEntry(ebr[446:], 0x83, 2, 6)
	putEntry(ebr[462:], 0x05, 12, 12)
	sign(ebr)
	ebr = d[44*sector:]
	putEntry(ebr[446:], 0x83, 2, 10) // logical 6: 46..56
	sign(ebr)
	return d
}

func TestPartitionsAndGrow(t *testing.T) {
	d := cardMBR(100)
	parts, err := Partitions(d)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		n             int
		start, length int64
	}{{1, 8, 8}, {2, 16, 8}, {3, 24, 8}, {5, 34, 6}, {6, 46, 10}}
	if len(parts) != len(want) {
		t.Fatalf("%+v", parts)
	}
	for i, w := range want {
		if p := parts[i]; p.Number != w.n || p.Start != w.start*sector || p.Length != w.length*sector {
			t.Errorf("partition %d: %+v, want %+v (sectors)", i, p, w)
		}
	}
	orig := bytes.Clone(d)
	p, changed, err := GrowPartition(d, int64(len(d)), 6)
	if err != nil || !changed || p.Start+p.Length != int64(len(d)) {
		t.Fatalf("grow: %+v %v %v", p, changed, err)
	}
	parts, _ = Partitions(d)
	if last := parts[len(parts)-1]; last.Start != 46*sector || last.Length != 54*sector {
		t.Errorf("after growing: %+v", last)
	}
	if ext := readEntry(d[494:]); ext.start != 32 || ext.count != 68 {
		t.Errorf("extended partition after growing: %+v", ext)
	}
	// Only the two counts changed.
	diff := 0
	for i := range d {
		if d[i] != orig[i] {
			diff++
		}
	}
	if diff > 8 {
		t.Errorf("%d bytes changed, want at most 8 (two 32-bit counts)", diff)
	}
	if _, _, err := GrowPartition(d, int64(len(d)), 5); err == nil {
		t.Error("grew partition 5, which is not the last")
	}
	if _, err := Partitions(make(memDisk, 4*sector)); err == nil {
		t.Error("a disk without an MBR has partitions")
	}
}

func FuzzPartitions(f *testing.F) {
	f.Add([]byte(cardMBR(64)))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 {
			return
		}
		d := memDisk(bytes.Clone(b))
		parts, err := Partitions(d)
		if err != nil || len(parts) == 0 {
			return
		}
		GrowPartition(d, int64(len(d)), parts[len(parts)-1].Number)
	})
}
