package postgres

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/sluis-gateway/sluis"
)

// Source is a store's export, as sqlite.DB.Export gives it: every table's
// name, columns and rows, handed to table one after the other.
type Source func(ctx context.Context, table func(name string, cols []string, rows iter.Seq2[[]any, error]) error) error

// renamedColumns are SQLite's column names that are reserved words here.
var renamedColumns = map[string]string{"user": "user_name"}

// Import fills this store, which must be empty, with everything src
// holds, in one transaction: every table, the audit trail with its IDs,
// hashes and checkpoints as they are, and a revision past the source's.
// A table or column of the source that this store does not know is an
// error, so that nothing is left behind without a word. It returns how
// many rows each source table gave.
//
// The tables are locked for the whole import, and an import refuses a
// store that holds anything (ECONFLICT): nodes that run on it already
// would lose what they wrote.
func (s *DB) Import(ctx context.Context, src Source) (map[string]int64, error) {
	counts := map[string]int64{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, importStoreLock); err != nil {
			return err
		}
		types, err := columnTypes(ctx, tx)
		if err != nil {
			return err
		}
		var tables []string
		for t := range types {
			tables = append(tables, pgx.Identifier{t}.Sanitize())
		}
		slices.Sort(tables)
		if _, err := tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN EXCLUSIVE MODE`); err != nil {
			return err
		}
		if err := checkEmpty(ctx, tx, types); err != nil {
			return err
		}
		err = src(ctx, func(name string, cols []string, rows iter.Seq2[[]any, error]) error {
			n, err := importTable(ctx, tx, types, name, cols, rows)
			counts[name] = n
			return err
		})
		if err != nil {
			return err
		}
		// The head of the chain, and the next checkpoint's number.
		if _, err := tx.Exec(ctx, `UPDATE audit_head SET (event_id, hash) =
			(SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1) WHERE EXISTS (SELECT 1 FROM audit_events)`); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence('audit_checkpoints', 'id'), max(id)) FROM audit_checkpoints HAVING max(id) IS NOT NULL`)
		return err
	})
	return counts, err
}

// columnTypes returns the type of every column of this store's tables
// (but schema_migrations), by table and column: information_schema's
// data_type, with " not null" after it for a column that takes no NULL.
func columnTypes(ctx context.Context, tx pgx.Tx) (map[string]map[string]string, error) {
	rows, err := tx.Query(ctx, `SELECT table_name, column_name, data_type || CASE is_nullable WHEN 'NO' THEN ' not null' ELSE '' END FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name != 'schema_migrations'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			return nil, err
		}
		if out[t] == nil {
			out[t] = map[string]string{}
		}
		out[t][c] = typ
	}
	return out, rows.Err()
}

// checkEmpty refuses a store that holds anything but its initial rows.
func checkEmpty(ctx context.Context, tx pgx.Tx, types map[string]map[string]string) error {
	for t := range types {
		var n int64
		q := `SELECT count(*) FROM ` + pgx.Identifier{t}.Sanitize()
		switch t {
		case "revision":
			q += ` WHERE value != 1`
		case "audit_head":
			q += ` WHERE event_id != 0`
		}
		if err := tx.QueryRow(ctx, q).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return sluis.Errorf(sluis.ECONFLICT, "the PostgreSQL store is not empty (its table %s holds %d rows): a copy goes only into a new database", t, n)
		}
	}
	return nil
}

// importTable copies one source table. SQLite's meta table carries the
// revision, which becomes this store's, one past it (caches made from
// the source's revision are stale here).
func importTable(ctx context.Context, tx pgx.Tx, types map[string]map[string]string, name string, cols []string, rows iter.Seq2[[]any, error]) (int64, error) {
	if name == "meta" {
		var n int64
		for vals, err := range rows {
			if err != nil {
				return n, err
			}
			n++
			if len(cols) != 2 || cols[0] != "key" || cols[1] != "value" {
				return n, fmt.Errorf("columns %v: want key, value", cols)
			}
			key, _ := vals[0].(string)
			rev, ok := vals[1].(int64)
			if key != "revision" || !ok {
				return n, fmt.Errorf("a row %q that this store does not know", key)
			}
			if _, err := tx.Exec(ctx, `UPDATE revision SET value = $1 WHERE id = 1`, rev+1); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	colTypes, ok := types[name]
	if !ok || name == "revision" || name == "audit_head" {
		return 0, fmt.Errorf("this store has no such table; it cannot hold what the source keeps there")
	}
	target := make([]string, len(cols))
	for i, c := range cols {
		t := c
		if r, ok := renamedColumns[c]; ok {
			t = r
		}
		if _, ok := colTypes[t]; !ok {
			return 0, fmt.Errorf("this store has no column %s", c)
		}
		target[i] = t
	}
	next, stop := iter.Pull2(rows)
	defer stop()
	src := &copySource{next: next, cols: target, types: colTypes}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{name}, target, src)
	if src.err != nil {
		// Ours, in our words: the server's says only that COPY failed.
		err = src.err
	}
	return n, err
}

// copySource feeds CopyFrom from a source table, converting SQLite's
// values to this store's column types.
type copySource struct {
	next  func() ([]any, error, bool)
	cols  []string
	types map[string]string
	vals  []any
	err   error
}

func (c *copySource) Next() bool {
	vals, err, ok := c.next()
	if !ok {
		return false
	}
	if err != nil {
		c.err = err
		return false
	}
	if len(vals) != len(c.cols) {
		c.err = fmt.Errorf("a row of %d values for %d columns", len(vals), len(c.cols))
		return false
	}
	out := make([]any, len(vals))
	for i, v := range vals {
		if out[i], err = convert(v, c.types[c.cols[i]]); err != nil {
			c.err = fmt.Errorf("column %s: %w", c.cols[i], err)
			return false
		}
	}
	c.vals = out
	return true
}

func (c *copySource) Values() ([]any, error) { return c.vals, nil }
func (c *copySource) Err() error             { return c.err }

// convert turns a value as SQLite keeps it into one for a column of type
// typ (see columnTypes).
func convert(v any, typ string) (any, error) {
	typ, notNull := strings.CutSuffix(typ, " not null")
	if v == nil {
		// SQLite's driver reads an empty BLOB as nil; in a column that
		// takes no NULL there, it is one.
		if notNull && typ == "bytea" {
			return []byte{}, nil
		}
		return nil, nil
	}
	switch typ {
	case "boolean":
		if n, ok := v.(int64); ok {
			return n != 0, nil
		}
	case "ARRAY": // a user's groups, kept comma-joined in SQLite
		if s, ok := v.(string); ok {
			if s == "" {
				return []string{}, nil
			}
			return strings.Split(s, ","), nil
		}
	case "bytea":
		switch b := v.(type) {
		case []byte:
			if b == nil && !notNull {
				return nil, nil
			}
			return append([]byte{}, b...), nil
		case string:
			return []byte(b), nil
		}
	case "bigint", "integer":
		if _, ok := v.(int64); ok {
			return v, nil
		}
	case "text":
		switch s := v.(type) {
		case string:
			return s, nil
		case []byte:
			return string(s), nil
		}
	}
	return nil, fmt.Errorf("a %T where this store keeps %s", v, typ)
}
