// Command tiles is an independent check of a log that custody published as C2SP
// tlog-tiles (custody log publish), written against Go's golang.org/x/mod/sumdb/note
// and golang.org/x/mod/sumdb/tlog (not against custody).
//
// Build it in GOPATH mode with the Debian golang-golang-x-mod-dev package:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o tiles tiles.go
//
// Usage:
//
//	tiles -log-key VKEY -dir DIR [-entries 0,5,299]
//
// It checks, in order:
//   - DIR/checkpoint is a note signed by the log key (note.Open) whose text is a
//     c2sp.org/tlog-checkpoint body with the log key's name as its origin;
//   - tlog.TreeHash, reading hashes through tlog.TileHashReader from the tiles
//     DIR/tile/<L>/<N>[.p/<W>] (height 8; x/mod's own paths carry the height,
//     tile/8/<L>/..., which is the only difference), equals the checkpoint's root;
//     TileHashReader authenticates every tile it loads against that root;
//   - for each index given with -entries, the entry is read from its entry bundle
//     DIR/tile/entries/<N>[.p/<W>] (big-endian uint16 length, then the bytes),
//     and tlog.CheckRecord accepts the proof tlog.ProveRecord builds from the tiles
//     for tlog.RecordHash(entry).
//
// Exit status: 0 and "OK" on stdout if everything verifies; 1 and a message on
// stderr if anything does not; 2 for a usage error.
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const height = 8

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "tiles: "+format+"\n", args...)
	os.Exit(1)
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "tiles: %s\n", msg)
	flag.Usage()
	os.Exit(2)
}

// c2spPath turns x/mod's tile path (tile/8/L/N[.p/W]) into the C2SP one (tile/L/N[.p/W]).
func c2spPath(t tlog.Tile) string {
	return strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", height), "tile/", 1)
}

// dirTiles reads tiles from a published folder: the tlog.TileReader x/mod asks for.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return height }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		data, err := os.ReadFile(filepath.Join(d.dir, c2spPath(t)))
		if err != nil && t.W < 1<<height {
			// A partial tile may be gone once its full tile is published.
			full := t
			full.W = 1 << height
			data, err = os.ReadFile(filepath.Join(d.dir, c2spPath(full)))
			if err == nil && len(data) >= t.W*tlog.HashSize {
				data = data[:t.W*tlog.HashSize]
			}
		}
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (d dirTiles) SaveTiles(tiles []tlog.Tile, data [][]byte) {}

// parseCheckpoint parses a c2sp.org/tlog-checkpoint body: origin, size, root.
func parseCheckpoint(text string) (origin string, size int64, root tlog.Hash) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		fail("checkpoint: fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: bad tree size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		fail("checkpoint: bad root hash %q", lines[2])
	}
	copy(root[:], raw)
	return lines[0], size, root
}

// entry reads entry i from its entry bundle.
func entry(dir string, i, size int64) []byte {
	n := i >> height
	w := int64(1 << height)
	if rest := size - n<<height; rest < w {
		w = rest
	}
	t := tlog.Tile{H: height, L: 0, N: n, W: int(w)}
	path := strings.Replace(c2spPath(t), "tile/0/", "tile/entries/", 1)
	data, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		fail("entry %d: %v", i, err)
	}
	want := int(i - n<<height)
	for k := 0; ; k++ {
		if len(data) < 2 {
			fail("entry %d: %s ends early", i, path)
		}
		l := int(data[0])<<8 | int(data[1])
		if len(data) < 2+l {
			fail("entry %d: %s ends inside entry %d", i, path, k)
		}
		if k == want {
			return data[2 : 2+l]
		}
		data = data[2+l:]
	}
}

func main() {
	logKey := flag.String("log-key", "", "the log's verifier key")
	dir := flag.String("dir", "", "the published folder")
	entries := flag.String("entries", "", "comma-separated entry indexes to check")
	flag.Parse()
	if *logKey == "" || *dir == "" {
		usage("-log-key and -dir are required")
	}
	v, err := note.NewVerifier(*logKey)
	if err != nil {
		usage(fmt.Sprintf("log key: %v", err))
	}
	msg, err := os.ReadFile(filepath.Join(*dir, "checkpoint"))
	if err != nil {
		fail("%v", err)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("checkpoint: %v", err)
	}
	origin, size, root := parseCheckpoint(n.Text)
	if origin != v.Name() {
		fail("checkpoint: origin %q is not the log key's name %q", origin, v.Name())
	}
	tree := tlog.Tree{N: size, Hash: root}
	hashes := tlog.TileHashReader(tree, dirTiles{*dir})
	got, err := tlog.TreeHash(size, hashes)
	if err != nil {
		fail("tree hash from the tiles: %v", err)
	}
	if got != root {
		fail("tree hash from the tiles is %v, not the checkpoint's %v", got, root)
	}
	var checked []string
	if *entries != "" {
		for _, s := range strings.Split(*entries, ",") {
			i, err := strconv.ParseInt(s, 10, 64)
			if err != nil || i < 0 || i >= size {
				usage(fmt.Sprintf("bad entry index %q", s))
			}
			data := entry(*dir, i, size)
			proof, err := tlog.ProveRecord(size, i, hashes)
			if err != nil {
				fail("entry %d: proof from the tiles: %v", i, err)
			}
			if err := tlog.CheckRecord(proof, size, root, i, tlog.RecordHash(data)); err != nil {
				fail("entry %d: not included: %v", i, err)
			}
			checked = append(checked, s)
		}
	}
	fmt.Printf("OK: %s (size %d) from tiles; entries included: [%s]\n", origin, size, strings.Join(checked, " "))
}
