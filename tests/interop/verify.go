// Command verify is an independent check of custody's signed notes, checkpoints,
// cosignatures and c2sp.org/tlog-proof@v1 files, written against Go's
// golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog (not against custody).
//
// Build it in GOPATH mode with the Debian golang-golang-x-mod-dev package:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= go build -o verify verify.go
//
// Usage:
//
//	verify -log-key VKEY -entry-key VKEY -checkpoint FILE -entry FILE -proof FILE [-witness-key VKEY]
//
// It checks, in order:
//   - the checkpoint file is a note signed by the log key (note.Open), and its
//     text is a c2sp.org/tlog-checkpoint body whose origin is the log key's name;
//   - with -witness-key (a type 0x04 verifier key), the checkpoint carries a
//     valid cosignature/v1 by that witness (c2sp.org/tlog-cosignature, checked
//     here with crypto/ed25519 because x/mod knows only type 0x01);
//   - the entry file is a note signed by the entry key (note.Open);
//   - the proof file is c2sp.org/tlog-proof@v1, its embedded checkpoint is
//     byte-identical to the checkpoint file, and tlog.CheckRecord accepts the
//     inclusion of tlog.RecordHash(entry) at its index.
//
// It does not check, by design (it proves that custody's notes, checkpoints and
// proofs are the public formats, not that a log or bundle holds up):
//   - that the entry key is valid at the entry's index (no key timeline: the caller
//     names the key), nor that every signature line on the entry is by a known key
//     (x/mod ignores lines by keys it is not given; docs/spec/entry.md requires every
//     line to verify), nor a handoff receiver's cosignature/v1 line;
//   - the entry's text format (docs/spec/entry.md) and the custody rules;
//   - the strict Ed25519 rules of docs/spec/signed-note.md §3 (crypto/ed25519 accepts
//     small-order and non-canonical public keys, which custody refuses);
//   - bundles: statement, manifest, files, consistency proofs, zips.  The Go program
//     of docs/verify-bundle.md §7 checks those, and lists what it leaves out.
//
// Exit status: 0 and "OK" on stdout if everything verifies; 1 and a message on
// stderr if anything does not; 2 for a usage error.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "verify: "+format+"\n", args...)
	os.Exit(1)
}

func usage(msg string) {
	fmt.Fprintf(os.Stderr, "verify: %s\n", msg)
	flag.Usage()
	os.Exit(2)
}

func readFile(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%v", err)
	}
	return data
}

func openNote(what string, msg []byte, vkey string) *note.Note {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		usage(fmt.Sprintf("%s key: %v", what, err))
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fail("%s: %v", what, err)
	}
	return n
}

// parseCheckpoint parses a c2sp.org/tlog-checkpoint body: origin, size, root.
func parseCheckpoint(text string) (origin string, size int64, root tlog.Hash) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || lines[0] == "" {
		fail("checkpoint: fewer than three lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		fail("checkpoint: bad size line %q", lines[1])
	}
	root, err = tlog.ParseHash(lines[2])
	if err != nil {
		fail("checkpoint: bad root hash line %q", lines[2])
	}
	return lines[0], size, root
}

// checkCosignature verifies a cosignature/v1 by the witness whose type-0x04
// verifier key is wkey, among the signatures x/mod could not verify.
func checkCosignature(n *note.Note, wkey string) uint64 {
	parts := strings.SplitN(wkey, "+", 3)
	if len(parts) != 3 {
		usage("witness key: not name+hash+key")
	}
	name := parts[0]
	id, err1 := hex.DecodeString(parts[1])
	key, err2 := base64.StdEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(id) != 4 || len(key) != 33 || key[0] != 0x04 {
		usage("witness key: not a cosignature/v1 (type 0x04) Ed25519 verifier key")
	}
	h := sha256.Sum256(append([]byte(name+"\n"), key...))
	if !bytes.Equal(h[:4], id) {
		usage("witness key: key id does not match the key")
	}
	pub := ed25519.PublicKey(key[1:])
	for _, sig := range n.UnverifiedSigs {
		if sig.Name != name || sig.Hash != binary.BigEndian.Uint32(id) {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(sig.Base64)
		if err != nil || len(raw) != 4+8+64 {
			fail("cosignature by %s: malformed", name)
		}
		ts := binary.BigEndian.Uint64(raw[4:12])
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, n.Text)
		if ts > 1<<63-1 || !ed25519.Verify(pub, []byte(msg), raw[12:]) {
			fail("cosignature by %s: invalid signature", name)
		}
		return ts
	}
	fail("checkpoint: no cosignature by witness %s", name)
	return 0
}

// parseProof parses a c2sp.org/tlog-proof@v1 file.
func parseProof(data []byte) (index int64, proof tlog.RecordProof, checkpoint []byte) {
	end := bytes.Index(data, []byte("\n\n"))
	if end < 0 {
		fail("proof: no blank line before the checkpoint")
	}
	lines := strings.Split(string(data[:end]), "\n")
	if lines[0] != "c2sp.org/tlog-proof@v1" {
		fail("proof: first line is not c2sp.org/tlog-proof@v1")
	}
	lines = lines[1:]
	if len(lines) > 0 && strings.HasPrefix(lines[0], "extra ") {
		lines = lines[1:] // opaque, unauthenticated; not needed to verify
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "index ") {
		fail("proof: no index line")
	}
	s := strings.TrimPrefix(lines[0], "index ")
	index, err := strconv.ParseInt(s, 10, 64)
	if err != nil || index < 0 || strconv.FormatInt(index, 10) != s {
		fail("proof: bad index %q", s)
	}
	for _, line := range lines[1:] {
		h, err := tlog.ParseHash(line)
		if err != nil {
			fail("proof: bad hash line %q", line)
		}
		proof = append(proof, h)
	}
	return index, proof, data[end+2:]
}

func main() {
	logKey := flag.String("log-key", "", "verifier key of the log (type 0x01)")
	entryKey := flag.String("entry-key", "", "verifier key of the entry's signer (type 0x01)")
	witnessKey := flag.String("witness-key", "", "optional cosignature/v1 verifier key (type 0x04)")
	checkpointPath := flag.String("checkpoint", "", "signed checkpoint note file")
	entryPath := flag.String("entry", "", "entry file (a signed note; the exact log leaf)")
	proofPath := flag.String("proof", "", "c2sp.org/tlog-proof@v1 file")
	flag.Parse()
	if *logKey == "" || *entryKey == "" || *checkpointPath == "" || *entryPath == "" || *proofPath == "" {
		usage("-log-key, -entry-key, -checkpoint, -entry and -proof are required")
	}

	cpBytes := readFile(*checkpointPath)
	cp := openNote("checkpoint", cpBytes, *logKey)
	origin, size, root := parseCheckpoint(cp.Text)
	if origin != cp.Sigs[0].Name {
		fail("checkpoint: origin %q is not the log key name %q", origin, cp.Sigs[0].Name)
	}
	if *witnessKey != "" {
		checkCosignature(cp, *witnessKey)
	}

	entry := readFile(*entryPath)
	openNote("entry", entry, *entryKey)

	index, proof, embedded := parseProof(readFile(*proofPath))
	if !bytes.Equal(embedded, cpBytes) {
		fail("proof: embedded checkpoint differs from the checkpoint file")
	}
	if index >= size {
		fail("proof: index %d is not below the tree size %d", index, size)
	}
	if err := tlog.CheckRecord(proof, size, root, index, tlog.RecordHash(entry)); err != nil {
		fail("proof: entry %d not included in tree of size %d: %v", index, size, err)
	}
	fmt.Printf("OK: entry %d of %s (size %d)\n", index, origin, size)
}
