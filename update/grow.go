package update

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The data partition is written 64 MiB small (the image must fit any card)
// and grown to fill the card at the first boot: GrowPartition extends it in
// the MBR partition table, the kernel is told the new size (BLKPG, no
// reboot needed), and resize2fs grows the mounted file system.

const sector = 512

// mbrEntry is one 16-byte MBR/EBR partition entry.
type mbrEntry struct {
	typ          byte
	start, count uint32 // sectors
}

func readEntry(b []byte) mbrEntry {
	return mbrEntry{typ: b[4], start: binary.LittleEndian.Uint32(b[8:]), count: binary.LittleEndian.Uint32(b[12:])}
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

// Partition is a partition found in an MBR: its number as Linux counts
// (1-4 primary, 5... logical), and where it lies, in bytes.
type Partition struct {
	Number        int
	Start, Length int64
	// where its entry is, and (for a logical one) the extended partition's
	entryOff int64
	extOff   int64 // the extended partition's primary entry; 0 for a primary
	extStart int64 // the extended partition's first sector (bytes)
}

// ErrNoMBR: the disk has no MBR partition table.
var ErrNoMBR = errors.New("no MBR partition table")

// readSector reads the 512 bytes at off and checks the 0x55AA signature.
func readSector(disk io.ReaderAt, off int64) ([]byte, error) {
	b := make([]byte, sector)
	if _, err := disk.ReadAt(b, off); err != nil {
		return nil, err
	}
	if b[510] != 0x55 || b[511] != 0xaa {
		return nil, fmt.Errorf("%w at byte %d", ErrNoMBR, off)
	}
	return b, nil
}

// Partitions lists an MBR disk's partitions, logical ones included (the
// extended partition itself is not listed).
func Partitions(disk io.ReaderAt) ([]Partition, error) {
	mbr, err := readSector(disk, 0)
	if err != nil {
		return nil, err
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		off := int64(446 + 16*i)
		e := readEntry(mbr[off:])
		if e.typ == 0 || e.count == 0 {
			continue
		}
		if !isExtended(e.typ) {
			parts = append(parts, Partition{Number: i + 1, Start: int64(e.start) * sector, Length: int64(e.count) * sector, entryOff: off})
			continue
		}
		// The logical partitions: a chain of EBRs, each with the
		// partition (relative to itself) and the next EBR (relative to
		// the extended partition's start).
		extStart := int64(e.start) * sector
		ebr := extStart
		for n := 5; ; n++ {
			if n > 5+128 {
				return nil, errors.New("extended partition: EBR chain too long (a loop?)")
			}
			b, err := readSector(disk, ebr)
			if err != nil {
				return nil, fmt.Errorf("extended partition: %w", err)
			}
			l := readEntry(b[446:])
			if l.typ != 0 && l.count != 0 {
				parts = append(parts, Partition{Number: n, Start: ebr + int64(l.start)*sector, Length: int64(l.count) * sector,
					entryOff: ebr + 446, extOff: off, extStart: extStart})
			}
			next := readEntry(b[462:])
			if next.typ == 0 || next.start == 0 {
				break
			}
			ebr = extStart + int64(next.start)*sector
		}
	}
	return parts, nil
}

// GrowPartition extends partition number (the last on the disk) to the end
// of a disk of diskSize bytes, and the extended partition around it when
// it is a logical one. It returns the partition after the change; changed
// is false when it already reached the end.
func GrowPartition(disk interface {
	io.ReaderAt
	io.WriterAt
}, diskSize int64, number int) (p Partition, changed bool, err error) {
	parts, err := Partitions(disk)
	if err != nil {
		return Partition{}, false, err
	}
	found := false
	for _, q := range parts {
		if q.Number == number {
			p, found = q, true
		}
	}
	if !found {
		return Partition{}, false, fmt.Errorf("no partition %d", number)
	}
	for _, q := range parts {
		if q.Start > p.Start {
			return p, false, fmt.Errorf("partition %d is not the last one (partition %d follows it)", number, q.Number)
		}
	}
	end := diskSize / sector * sector
	if end > (1<<32-1)*sector {
		end = (1<<32 - 1) * sector // MBR's limit: 2 TiB
	}
	if p.Start+p.Length >= end {
		return p, false, nil
	}
	newCount := (end - p.Start) / sector
	if p.extOff != 0 {
		// The logical partition's entry counts from its EBR.
		ebr := p.entryOff - 446
		if err := writeCount(disk, p.entryOff, uint32((end-ebr)/sector-(p.Start-ebr)/sector)); err != nil {
			return p, false, err
		}
		if err := writeCount(disk, p.extOff, uint32((end-p.extStart)/sector)); err != nil {
			return p, false, err
		}
	} else if err := writeCount(disk, p.entryOff, uint32(newCount)); err != nil {
		return p, false, err
	}
	p.Length = newCount * sector
	return p, true, nil
}

func writeCount(disk io.WriterAt, entryOff int64, count uint32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], count)
	_, err := disk.WriteAt(b[:], entryOff+12)
	return err
}
