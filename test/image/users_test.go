package image

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// usersTable is buildroot/board/callbox/common/users.txt, the image's
// users (Buildroot's makeusers syntax).
func usersTable(t testing.TB) string {
	return readFile(t, filepath.Join(boardDir(t), "common", "users.txt"))
}

// usersLines are the table's entries: username uid group gid password
// home shell groups comment.
func usersLines(t testing.TB) [][]string {
	var out [][]string
	for _, line := range strings.Split(usersTable(t), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 9 {
			t.Fatalf("users.txt line %q: %d fields, want 9", line, len(f))
		}
		out = append(out, f)
	}
	return out
}

// TestUsersTable (issue 12, item 13): every image has the callbox user,
// not root, with only the device groups it needs, its home the data
// directory, no login; and the gpio group those devices are given to.
func TestUsersTable(t *testing.T) {
	var callbox []string
	groups := map[string]bool{}
	for _, f := range usersLines(t) {
		groups[f[2]] = true
		if f[0] == "callbox" {
			callbox = f
		}
	}
	if callbox == nil {
		t.Fatal("users.txt has no callbox user")
	}
	if callbox[1] == "0" || callbox[2] == "root" || callbox[3] == "0" {
		t.Errorf("callbox is root: %v", callbox)
	}
	if callbox[5] != "/data/callbox" || callbox[6] != "/bin/false" {
		t.Errorf("callbox's home and shell: %v, want /data/callbox and /bin/false", callbox)
	}
	g := strings.Split(callbox[7], ",")
	slices.Sort(g)
	if !slices.Equal(g, []string{"audio", "gpio", "video"}) {
		t.Errorf("callbox's groups %v, want audio, gpio, video", g)
	}
	if !groups["gpio"] {
		t.Error("users.txt does not create the gpio group")
	}
	for _, d := range defconfigs(t) {
		if v := d.values["BR2_ROOTFS_USERS_TABLES"]; v != "$(BR2_EXTERNAL_CALLBOX_PATH)/board/callbox/common/users.txt" {
			t.Errorf("%s: BR2_ROOTFS_USERS_TABLES=%s", d.name, v)
		}
	}
}

// guestUsers makes /etc/passwd and /etc/group for the boot test's guest
// from users.txt, as Buildroot's makeusers does on the skeleton's (root,
// video 28, audio 29): "-1" takes the next system id from 100.
func guestUsers(t testing.TB) (passwd, group string) {
	type grp struct {
		gid     int
		members []string
	}
	groups := map[string]*grp{"root": {gid: 0}, "video": {gid: 28}, "audio": {gid: 29}}
	order := []string{"root", "video", "audio"}
	next := 100
	addGroup := func(name string) *grp {
		if g, ok := groups[name]; ok {
			return g
		}
		groups[name] = &grp{gid: next}
		next++
		order = append(order, name)
		return groups[name]
	}
	passwd = "root:x:0:0:root:/root:/bin/sh\n"
	for _, f := range usersLines(t) {
		main := addGroup(f[2])
		if f[0] == "-" {
			continue
		}
		uid := next
		next++
		passwd += fmt.Sprintf("%s:x:%d:%d:%s:%s:%s\n", f[0], uid, main.gid, strings.Join(f[8:], " "), f[5], f[6])
		if f[7] != "-" {
			for _, s := range strings.Split(f[7], ",") {
				g := addGroup(s)
				g.members = append(g.members, f[0])
			}
		}
	}
	for _, name := range order {
		g := groups[name]
		group += fmt.Sprintf("%s:x:%d:%s\n", name, g.gid, strings.Join(g.members, ","))
	}
	return passwd, group
}
