package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluis-gateway/sluis"
	"github.com/sluis-gateway/sluis/datadir"
	"github.com/sluis-gateway/sluis/store/postgres"
	"github.com/sluis-gateway/sluis/store/sqlite"
)

// storeCmd is `sluis store copy --from sqlite:PATH --to postgres://...`:
// it moves an installation from the embedded database to PostgreSQL.
func (e *env) storeCmd(args []string) error {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprintln(e.stderr, "sluis store: the only command is \"store copy --from sqlite:PATH --to postgres://...\"")
		return ErrUsage
	}
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	from := fs.String("from", "", "the database to copy: sqlite:PATH (data_dir/sluis.db)")
	to := fs.String("to", "", "an empty PostgreSQL database: postgres://USER[:PASSWORD]@HOST/DB")
	toFile := fs.String("to-file", "", "a file that holds the postgres:// URL (keeps its password off the command line)")
	if pos, err := parseFlags(fs, args[1:], e.stderr); err != nil || len(pos) > 0 {
		return ErrUsage
	}
	path, ok := strings.CutPrefix(*from, "sqlite:")
	if !ok || path == "" {
		fmt.Fprintln(e.stderr, "sluis store copy: --from sqlite:PATH names the SQLite database to copy")
		return ErrUsage
	}
	url := *to
	switch {
	case (*to == "") == (*toFile == ""):
		fmt.Fprintln(e.stderr, "sluis store copy: give the PostgreSQL database with --to postgres://... or --to-file FILE")
		return ErrUsage
	case *toFile != "":
		data, err := os.ReadFile(*toFile)
		if err != nil {
			return fmt.Errorf("--to-file: %w", err)
		}
		url = strings.TrimSpace(string(data))
	}
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return errors.New("the target is not a postgres:// URL")
	}
	// Opening a missing file would make an empty database, and copy it.
	if fi, err := os.Stat(path); err != nil {
		return fmt.Errorf("--from: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return fmt.Errorf("--from: %s is not a database", path)
	}
	// What a gateway writes after the copy began would be lost: none may
	// run on the source.
	unlock, err := datadir.Lock(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("%w; stop it before copying its store", err)
	}
	defer unlock()

	ctx := e.ctx
	src, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	defer dst.Close()
	started := time.Now()
	counts, err := dst.Import(ctx, src.Export)
	if err != nil {
		return fmt.Errorf("copying %s to %s: %w (nothing was stored there)", path, postgres.Redact(url), err)
	}
	took := time.Since(started)
	trail, err := sameTrail(ctx, src, dst)
	if err != nil {
		return fmt.Errorf("the copy in %s is stored, but its audit trail differs from the source's: %w", postgres.Redact(url), err)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "copied %s to %s in %v:\n", path, postgres.Redact(url), took.Round(time.Millisecond))
	var tables []string
	for t := range counts {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, t := range tables {
		fmt.Fprintf(tw, "  %s\t%d rows\n", t, counts[t])
	}
	tw.Flush()
	fmt.Fprintln(e.stdout, trail)
	fmt.Fprintln(e.stdout, "Next: put the database in sluis.yaml (store: {postgres: {url_file: FILE}}), keep data_dir's keys, and run `sluis audit verify` to check the signed checkpoints of the copy.")
	return nil
}

// sameTrail checks the copied audit trail against the source's: every
// event chained to the one before, numbered without gaps, ending in the
// source's last event, with the same checkpoints. (The checkpoints'
// signatures are checked by `sluis audit verify`, which has the key.)
// It returns a line that says so.
func sameTrail(ctx context.Context, src sluis.Store, dst sluis.Store) (string, error) {
	srcID, srcHash, err := src.LastEvent(ctx)
	if err != nil {
		return "", err
	}
	evs, err := dst.Events(ctx, time.Time{})
	if err != nil {
		return "", err
	}
	var prev []byte
	for i, ev := range evs {
		if ev.ID != int64(i+1) {
			return "", fmt.Errorf("event %d follows event %d", ev.ID, i)
		}
		// Events from before the chain (an old store) carry no hashes.
		if len(ev.Hash) > 0 && (!bytes.Equal(ev.PrevHash, prev) || !bytes.Equal(ev.Hash, ev.ChainHash(prev))) {
			return "", fmt.Errorf("event %d is not chained to the one before", ev.ID)
		}
		prev = ev.Hash
	}
	dstID, dstHash, err := dst.LastEvent(ctx)
	if err != nil {
		return "", err
	}
	if dstID != srcID || !bytes.Equal(dstHash, srcHash) || int64(len(evs)) != srcID {
		return "", fmt.Errorf("it ends in event %d, the source in event %d", dstID, srcID)
	}
	srcCPs, err := src.Checkpoints(ctx)
	if err != nil {
		return "", err
	}
	dstCPs, err := dst.Checkpoints(ctx)
	if err != nil {
		return "", err
	}
	if len(srcCPs) != len(dstCPs) {
		return "", fmt.Errorf("%d checkpoints, the source %d", len(dstCPs), len(srcCPs))
	}
	for i := range srcCPs {
		a, b := srcCPs[i], dstCPs[i]
		if a.ID != b.ID || a.EventID != b.EventID || !bytes.Equal(a.Hash, b.Hash) || !a.Time.Equal(b.Time) || !bytes.Equal(a.Signature, b.Signature) {
			return "", fmt.Errorf("checkpoint %d differs", a.ID)
		}
	}
	last := "empty"
	if srcID > 0 {
		last = fmt.Sprintf("event %d, hash %s…", srcID, hex.EncodeToString(srcHash[:min(8, len(srcHash))]))
	}
	return fmt.Sprintf("audit trail: %d events chained as in the source (last: %s), %d checkpoints", len(evs), last, len(dstCPs)), nil
}
