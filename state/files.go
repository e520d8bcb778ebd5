package state

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// staleCreation is how old a temporary file of an unfinished creation must be before
// Open removes it. Creating a state file takes milliseconds; a younger one may belong
// to a run creating the file right now.
const staleCreation = 10 * time.Minute

// creatingPrefix is the name prefix of the temporary files create makes beside path.
func creatingPrefix(path string) string { return "." + filepath.Base(path) + ".creating-" }

// removeLeftovers removes the temporary files a run killed while creating the state
// file at path left behind: only names create makes for this very file
// (".<name>.creating-<digits>", regular files), and only when they are another name
// of the live file (killed between linking it into place and removing the temporary
// name) or older than staleCreation (killed before linking). Anything else in the
// directory is left alone. It is best effort: a file it cannot remove stays.
func removeLeftovers(path string, now time.Time) []string {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	prefix := creatingPrefix(path)
	live, liveErr := os.Stat(path)
	var removed []string
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		linked := liveErr == nil && os.SameFile(fi, live)
		if !linked && now.Sub(fi.ModTime()) < staleCreation {
			continue
		}
		if err := os.Remove(p); err == nil {
			removed = append(removed, name)
		}
	}
	return removed
}

// permissionWarnings says when the state file or its directory may be written by
// other users: they could then alter the records (mark work done, or not) or replace
// the file. A directory with the sticky bit (such as /tmp) only lets others add
// files, not replace this one, and is not reported.
func permissionWarnings(path string) []string {
	var out []string
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err == nil {
		if m := fi.Mode(); m.Perm()&0o022 != 0 && m&fs.ModeSticky == 0 {
			out = append(out, fmt.Sprintf("state directory %s is writable by %s (mode %04o): other users could alter or replace the state; run chmod go-w %s", dir, whoMayWrite(m), m.Perm(), dir))
		}
	}
	if fi, err := os.Stat(path); err == nil {
		if m := fi.Mode(); m.Perm()&0o022 != 0 {
			out = append(out, fmt.Sprintf("state file %s is writable by %s (mode %04o): other users could alter the records; run chmod 600 %s", path, whoMayWrite(m), m.Perm(), path))
		}
	}
	return out
}

func whoMayWrite(m fs.FileMode) string {
	switch {
	case m&0o022 == 0o022:
		return "group and others"
	case m&0o002 != 0:
		return "others"
	}
	return "group"
}
