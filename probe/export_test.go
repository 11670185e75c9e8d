package probe

import "io/fs"

// SetReadDir replaces how h lists a module's reference directory, to make
// the listing fail, as no directory fails for root.
func SetReadDir(h *Handler, readDir func(string) ([]fs.DirEntry, error)) {
	h.sessions.readDir = readDir
}
