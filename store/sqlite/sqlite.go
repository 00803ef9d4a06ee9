// Package sqlite is the default store of sluis: an embedded SQLite database
// in the data directory, through a pure-Go driver so the binary needs no cgo.
// The gateway and the operator's CLI open the same file at once; SQLite's WAL
// mode and a busy timeout let them share it.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluis-gateway/sluis"
	driver "modernc.org/sqlite" // registers the "sqlite" driver
)

// Commits are made durable with fdatasync(2), not fsync(2), where the
// driver can (Linux among others). A commit in WAL mode syncs the WAL,
// which after the first checkpoint is rewritten in place: fdatasync
// writes the data and whatever metadata is needed to read it back (the
// size, when it grew), and skips only the modification time, which on
// ext4 otherwise forces a journal commit, one more disk flush, on every
// commit, and waits for the other processes' metadata in that journal. A
// commit is as durable as before. SQLite's own builds use fdatasync where
// it exists; the pure-Go driver keeps fsync unless told. A tunnel's setup
// waits for such a commit (its tunnel.open event).
func init() { driver.Fdatasync(true) }

//go:embed migrations/*.sql
var migrations embed.FS

// DB is a sluis.Store backed by one SQLite file.
type DB struct {
	db *sql.DB

	// Changed, if set, is called after every committed change that
	// advanced the revision, so the process can tell whoever caches
	// (see package changes). Set it before use.
	Changed func(ctx context.Context)

	// appendStmts holds the audit chain's two statements, prepared once:
	// parsing them again for every batch cost as much CPU as writing it
	// (a tunnel's setup waits for its tunnel.open event).
	appendStmts struct {
		once         sync.Once
		last, insert *sql.Stmt
	}

	// revMu guards the dedicated connection used by Revision and what it
	// last saw.
	revMu       sync.Mutex
	revConn     *sql.Conn
	dataVersion int64
	revision    int64
}

var _ sluis.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path and brings its schema
// up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	// synchronous(FULL): a commit survives a power cut, not only a crash.
	// _txlock=immediate: a write transaction takes the write lock at BEGIN,
	// so two processes never deadlock upgrading read locks.
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(0)
	s := &DB{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return s.withRevConn(ctx, path)
}

// withRevConn takes the dedicated connection that Revision reads on.
func (s *DB) withRevConn(ctx context.Context, path string) (*DB, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	s.revConn = conn
	s.dataVersion = -1
	return s, nil
}

// OpenReadOnly opens the database at path for reading only, as it is
// (immutable: no journal, no lock, nothing written): for a copy on a
// read-only filesystem, for forensics. Every change fails.
func OpenReadOnly(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&immutable=1&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &DB{db: db}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: not a sluis database: %w", path, err)
	}
	return s.withRevConn(ctx, path)
}

// Close closes the database.
func (s *DB) Close() error {
	s.revMu.Lock()
	if s.revConn != nil {
		s.revConn.Close()
		s.revConn = nil
	}
	s.revMu.Unlock()
	return s.db.Close()
}

// migrate applies the embedded migrations that have not run yet, each in its
// own transaction, in file-name order.
func (s *DB) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY) STRICT`); err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES (?)`, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// Ready reports whether the store can be used now: the database answers,
// and every migration this binary knows has been applied (a schema that is
// newer, migrated by a newer binary, is the upgrade's business). The
// gateway's /readyz asks it.
func (s *DB) Ready(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer rows.Close()
	applied := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		applied[name] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	for _, name := range names {
		if !applied[name] {
			return fmt.Errorf("database: migration %s has not been applied", name)
		}
	}
	return nil
}

// tx runs fn in a transaction. The events ctx carries (sluis.WithEvents)
// are appended to the audit chain in the same transaction, so a change
// and its record commit together or not at all.
func (s *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	return s.rawTx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if es := sluis.EventsOf(ctx); len(es) > 0 {
			if _, err := s.appendEvents(ctx, tx, es); err != nil {
				return fmt.Errorf("recording the change in the audit trail: %w", err)
			}
		}
		return nil
	})
}

func (s *DB) rawTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// changeTx runs fn in a transaction that also advances the revision, for
// every change that can take access away, and calls Changed after commit.
func (s *DB) changeTx(ctx context.Context, fn func(*sql.Tx) error) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'revision'`)
		return err
	})
	if err == nil && s.Changed != nil {
		s.Changed(ctx)
	}
	return err
}

// Revision reads PRAGMA data_version, which changes only when another
// connection commits, and reads the revision row only then. In the steady
// state that is one cheap statement per request.
func (s *DB) Revision(ctx context.Context) (int64, error) {
	s.revMu.Lock()
	defer s.revMu.Unlock()
	if s.revConn == nil {
		return 0, errors.New("database closed")
	}
	var dv int64
	if err := s.revConn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&dv); err != nil {
		return 0, err
	}
	if dv == s.dataVersion {
		return s.revision, nil
	}
	var rev int64
	if err := s.revConn.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'revision'`).Scan(&rev); err != nil {
		return 0, err
	}
	s.dataVersion, s.revision = dv, rev
	return rev, nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func joinGroups(g []string) string { return strings.Join(g, ",") }

func splitGroups(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// ---- users ----

func (s *DB) CreateUser(ctx context.Context, u sluis.User) error {
	// One statement, so that two concurrent creations of Alice and alice
	// cannot both pass the check (SQLite runs one writer at a time).
	var n int64
	// A change transaction, so that a running gateway and the operator's
	// checkpoint hear of it like any other change.
	err := s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO users (name, groups, password_hash, disabled, totp_secret, created_at, source, external_id, email, display_name)
			SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(name) = lower(?))`,
			u.Name, joinGroups(u.Groups), u.PasswordHash, u.Disabled, nullBlob(u.TOTPSecret), unixNano(u.CreatedAt), u.Source, u.ExternalID, u.Email, u.DisplayName, u.Name)
		if err != nil {
			return err
		}
		if n, _ = res.RowsAffected(); n == 0 {
			return errTwin // nothing written: no event either
		}
		return nil
	})
	if isUnique(err) {
		return sluis.Errorf(sluis.ECONFLICT, "user %q exists already", u.Name)
	}
	if err != nil && !errors.Is(err, errTwin) {
		return err
	}
	if n == 0 {
		twins, _ := s.UsersNamed(ctx, u.Name)
		other := u.Name
		if len(twins) > 0 {
			other = twins[0].Name
		}
		return sluis.Errorf(sluis.ECONFLICT, "user %q exists already (names are compared without regard to case)", other)
	}
	return nil
}

var errTwin = errors.New("a user of that name in other case exists")

func (s *DB) UsersNamed(ctx context.Context, name string) ([]sluis.User, error) {
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users WHERE lower(name) = lower(?) ORDER BY name`, name)
}

func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const userCols = `name, groups, password_hash, disabled, totp_secret, created_at, source, external_id, email, display_name`

func scanUser(sc interface{ Scan(...any) error }) (sluis.User, error) {
	var u sluis.User
	var groups string
	var created int64
	err := sc.Scan(&u.Name, &groups, &u.PasswordHash, &u.Disabled, &u.TOTPSecret, &created, &u.Source, &u.ExternalID, &u.Email, &u.DisplayName)
	u.Groups = splitGroups(groups)
	u.CreatedAt = fromNano(created)
	return u, err
}

func (s *DB) User(ctx context.Context, name string) (sluis.User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return u, sluis.Errorf(sluis.ENOTFOUND, "no user %q", name)
	}
	return u, err
}

func (s *DB) Users(ctx context.Context) ([]sluis.User, error) {
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
}

// queryUsers returns the users a query selects (its columns: userCols).
func (s *DB) queryUsers(ctx context.Context, query string, args ...any) ([]sluis.User, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// updateUser runs one UPDATE on a user, bumping the revision, and reports a
// missing user as ENOTFOUND.
func (s *DB) updateUser(ctx context.Context, name, query string, args ...any) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no user %q", name)
		}
		return nil
	})
}

func (s *DB) SetPassword(ctx context.Context, name, hash string) error {
	return s.updateUser(ctx, name, `UPDATE users SET password_hash = ? WHERE name = ?`, hash, name)
}

func (s *DB) SetGroups(ctx context.Context, name string, groups []string) error {
	return s.updateUser(ctx, name, `UPDATE users SET groups = ? WHERE name = ?`, joinGroups(groups), name)
}

func (s *DB) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return s.updateUser(ctx, name, `UPDATE users SET disabled = ? WHERE name = ?`, disabled, name)
}

func (s *DB) SetExternalID(ctx context.Context, name, id string) error {
	return s.updateUser(ctx, name, `UPDATE users SET external_id = ? WHERE name = ?`, id, name)
}

func (s *DB) SetProfile(ctx context.Context, name, email, displayName string) error {
	return s.updateUser(ctx, name, `UPDATE users SET email = ?, display_name = ? WHERE name = ?`, email, displayName, name)
}

func (s *DB) SetTOTP(ctx context.Context, name string, sealed []byte) error {
	return s.updateUser(ctx, name, `UPDATE users SET totp_secret = ?, totp_last_step = 0 WHERE name = ?`, nullBlob(sealed), name)
}

func (s *DB) UseTOTPStep(ctx context.Context, name string, step int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET totp_last_step = ? WHERE name = ? AND totp_last_step < ?`, step, name, step)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ---- passkeys ----

func (s *DB) PasskeyHandle(ctx context.Context, user string, create bool) ([]byte, error) {
	var h []byte
	err := s.db.QueryRowContext(ctx, `SELECT passkey_handle FROM users WHERE name = ?`, user).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sluis.Errorf(sluis.ENOTFOUND, "no user %q", user)
	}
	if err != nil || len(h) > 0 {
		return h, err
	}
	if !create {
		return nil, sluis.Errorf(sluis.ENOTFOUND, "user %q has no passkey handle", user)
	}
	h = make([]byte, 32)
	rand.Read(h)
	// Only if still unset: two first enrolments at once get one handle.
	if _, err := s.db.ExecContext(ctx, `UPDATE users SET passkey_handle = ? WHERE name = ? AND passkey_handle IS NULL`, h, user); err != nil {
		return nil, err
	}
	return s.PasskeyHandle(ctx, user, false)
}

func (s *DB) UserByPasskeyHandle(ctx context.Context, handle []byte) (string, error) {
	var name string
	err := s.db.QueryRowContext(ctx, `SELECT name FROM users WHERE passkey_handle = ?`, handle).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", sluis.Errorf(sluis.ENOTFOUND, "no user with this passkey handle")
	}
	return name, err
}

func (s *DB) AddPasskey(ctx context.Context, k sluis.Passkey) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO passkeys (id, user, name, data, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.User, k.Name, k.Data, unixNano(k.CreatedAt))
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return sluis.Errorf(sluis.ECONFLICT, "a passkey with this name or ID exists")
	}
	return err
}

func (s *DB) Passkeys(ctx context.Context, user string) ([]sluis.Passkey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, user, name, data, created_at, last_used_at FROM passkeys WHERE user = ? ORDER BY created_at, name`, user)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.Passkey
	for rows.Next() {
		var k sluis.Passkey
		var created, used int64
		if err := rows.Scan(&k.ID, &k.User, &k.Name, &k.Data, &created, &used); err != nil {
			return nil, err
		}
		k.CreatedAt, k.LastUsed = fromNano(created), fromNano(used)
		out = append(out, k)
	}
	return out, rows.Err()
}

func (s *DB) UsePasskey(ctx context.Context, id, data []byte, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE passkeys SET data = ?, last_used_at = ? WHERE id = ?`, data, unixNano(at), id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sluis.Errorf(sluis.ENOTFOUND, "no such passkey")
	}
	return nil
}

func (s *DB) RemovePasskey(ctx context.Context, user string, id []byte) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM passkeys WHERE user = ? AND id = ?`, user, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no such passkey")
		}
		return nil
	})
}

func (s *DB) UseChallenge(ctx context.Context, hash []byte, expires time.Time) (bool, error) {
	var fresh bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM spent_challenges WHERE expires_at < ?`, time.Now().Add(-time.Hour).UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO spent_challenges (hash, expires_at) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING`, hash, unixNano(expires))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		fresh = n == 1
		return err
	})
	return fresh, err
}

// ---- recovery codes ----

func (s *DB) SetRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user = ?`, user); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user, hash) VALUES (?, ?)`, user, h); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *DB) UseRecoveryCode(ctx context.Context, user string, hash []byte, at time.Time) (bool, int, error) {
	var ok bool
	var left int
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user = ? AND hash = ? AND used_at = 0`, unixNano(at), user, hash)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		ok = n == 1
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user = ? AND used_at = 0`, user).Scan(&left)
	})
	return ok, left, err
}

func (s *DB) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user = ? AND used_at = 0`, user).Scan(&n)
	return n, err
}

func (s *DB) ResetMFA(ctx context.Context, user string) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET totp_secret = NULL, totp_last_step = 0 WHERE name = ?`, user)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no user %q", user)
		}
		for _, q := range []string{`DELETE FROM passkeys WHERE user = ?`, `DELETE FROM recovery_codes WHERE user = ?`} {
			if _, err := tx.ExecContext(ctx, q, user); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- device grants ----

func (s *DB) CreateDeviceGrant(ctx context.Context, g sluis.DeviceGrant) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		// Expired grants go when new ones come.
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_grants WHERE expires_at < ?`, unixNano(g.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO device_grants (device_hash, user_code, source, created_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?)`,
			g.DeviceHash, g.UserCode, g.Source, unixNano(g.CreatedAt), unixNano(g.ExpiresAt), sluis.DevicePending)
		if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return sluis.Errorf(sluis.ECONFLICT, "device or user code taken")
		}
		return err
	})
}

const deviceCols = `device_hash, user_code, source, created_at, expires_at, state, user, session_id, sealed_token`

func scanDevice(sc interface{ Scan(...any) error }) (sluis.DeviceGrant, error) {
	var g sluis.DeviceGrant
	var created, expires int64
	err := sc.Scan(&g.DeviceHash, &g.UserCode, &g.Source, &created, &expires, &g.State, &g.User, &g.SessionID, &g.SealedToken)
	g.CreatedAt, g.ExpiresAt = fromNano(created), fromNano(expires)
	if errors.Is(err, sql.ErrNoRows) {
		return g, sluis.Errorf(sluis.ENOTFOUND, "no such login request, or it expired")
	}
	return g, err
}

func (s *DB) PendingDeviceGrants(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM device_grants WHERE state = ? AND expires_at > ?`, sluis.DevicePending, unixNano(now)).Scan(&n)
	return n, err
}

func (s *DB) DeviceGrantByUserCode(ctx context.Context, userCode string, now time.Time) (sluis.DeviceGrant, error) {
	return scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE user_code = ? AND state = ? AND expires_at > ?`,
		userCode, sluis.DevicePending, unixNano(now)))
}

func (s *DB) DecideDeviceGrant(ctx context.Context, userCode string, approve bool, user, sessionID string, sealedToken []byte, now time.Time) error {
	state := sluis.DeviceDenied
	if approve {
		state = sluis.DeviceApproved
	}
	res, err := s.db.ExecContext(ctx, `UPDATE device_grants SET state = ?, user = ?, session_id = ?, sealed_token = ? WHERE user_code = ? AND state = ? AND expires_at > ?`,
		state, user, sessionID, nullBlob(sealedToken), userCode, sluis.DevicePending, unixNano(now))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return sluis.Errorf(sluis.ENOTFOUND, "no such login request, or it expired")
	}
	return nil
}

func (s *DB) TakeDeviceGrant(ctx context.Context, deviceHash []byte, now time.Time) (sluis.DeviceGrant, error) {
	// Most polls find the grant still pending: they read without taking
	// the write lock.
	g, err := scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE device_hash = ? AND expires_at > ?`, deviceHash, unixNano(now)))
	if err != nil || g.State != sluis.DeviceApproved {
		return g, err
	}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE device_hash = ? AND expires_at > ?`, deviceHash, unixNano(now)))
		if err != nil || g.State != sluis.DeviceApproved {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE device_grants SET state = ?, sealed_token = NULL WHERE device_hash = ?`, sluis.DeviceTaken, deviceHash)
		return err
	})
	return g, err
}

// ---- sessions ----

const sessionCols = `s.id, s.user, s.stage, s.created_at, s.last_seen, s.expires_at, s.mfa_at, s.mfa_method, s.source, s.user_agent, s.enroll_secret, s.revoked_at, s.parent_id`

func scanSession(sc interface{ Scan(...any) error }) (sluis.Session, error) {
	var x sluis.Session
	var created, seen, expires, mfa, revoked int64
	err := sc.Scan(&x.ID, &x.User, &x.Stage, &created, &seen, &expires, &mfa, &x.MFAMethod, &x.Source, &x.UserAgent, &x.EnrollSecret, &revoked, &x.ParentID)
	x.CreatedAt, x.LastSeen, x.ExpiresAt = fromNano(created), fromNano(seen), fromNano(expires)
	x.MFAAt, x.RevokedAt = fromNano(mfa), fromNano(revoked)
	return x, err
}

func (s *DB) CreateSession(ctx context.Context, x sluis.Session, tokenHash []byte, host string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`INSERT INTO sessions (id, user, stage, created_at, last_seen, expires_at, mfa_at, mfa_method, source, user_agent, enroll_secret, parent_id)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			x.ID, x.User, x.Stage, unixNano(x.CreatedAt), unixNano(x.LastSeen), unixNano(x.ExpiresAt),
			unixNano(x.MFAAt), x.MFAMethod, x.Source, x.UserAgent, nullBlob(x.EnrollSecret), x.ParentID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES (?, ?, ?)`, tokenHash, x.ID, host)
		return err
	})
}

func (s *DB) AddToken(ctx context.Context, sessionID string, tokenHash []byte, host string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES (?, ?, ?)`, tokenHash, sessionID, host)
	return err
}

func (s *DB) SessionByToken(ctx context.Context, tokenHash []byte, host string) (sluis.Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx,
		`SELECT `+sessionCols+` FROM session_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ? AND t.host = ?`,
		tokenHash, host))
	if errors.Is(err, sql.ErrNoRows) {
		return x, sluis.Errorf(sluis.ENOTFOUND, "no such session")
	}
	return x, err
}

func (s *DB) SessionHosts(ctx context.Context, id string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT host FROM session_tokens WHERE session_id = ? ORDER BY host`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		hosts = append(hosts, h)
	}
	return hosts, rows.Err()
}

func (s *DB) Session(ctx context.Context, id string) (sluis.Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions s WHERE s.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return x, sluis.Errorf(sluis.ENOTFOUND, "no session %q", id)
	}
	return x, err
}

func (s *DB) Sessions(ctx context.Context) ([]sluis.Session, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions s ORDER BY s.created_at, s.id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

func (s *DB) CountSessions(ctx context.Context, now, seenSince time.Time) (int, map[string]int, error) {
	const live = `s.stage = 'complete' AND s.revoked_at = 0 AND s.expires_at > ? AND s.last_seen >= ?`
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions s WHERE `+live, unixNano(now), unixNano(seenSince)).Scan(&total); err != nil {
		return 0, nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT t.host, count(DISTINCT t.session_id) FROM session_tokens t JOIN sessions s ON s.id = t.session_id
		WHERE `+live+` GROUP BY t.host`, unixNano(now), unixNano(seenSince))
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	byHost := map[string]int{}
	for rows.Next() {
		var host string
		var n int
		if err := rows.Scan(&host, &n); err != nil {
			return 0, nil, err
		}
		byHost[host] = n
	}
	return total, byHost, rows.Err()
}

func (s *DB) CompleteSession(ctx context.Context, id string, mfaAt time.Time, method string, expiresAt time.Time, tokenHash []byte, host string) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			`UPDATE sessions SET stage = ?, mfa_at = ?, mfa_method = ?, expires_at = ?, enroll_secret = NULL WHERE id = ? AND revoked_at = 0`,
			sluis.StageComplete, unixNano(mfaAt), method, unixNano(expiresAt), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no session %q", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM session_tokens WHERE session_id = ?`, id); err != nil {
			return err
		}
		// The old token is dead now; caches holding it must reload.
		_, err = tx.ExecContext(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES (?, ?, ?)`, tokenHash, id, host)
		return err
	})
}

func (s *DB) SetEnrollSecret(ctx context.Context, id string, sealed []byte) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sessions SET enroll_secret = ? WHERE id = ?`, nullBlob(sealed), id)
	return err
}

func (s *DB) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE sessions SET last_seen = ? WHERE id = ? AND last_seen < ?`, unixNano(at), id, unixNano(at))
	return err
}

func (s *DB) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		// Sessions made from this one go with it.
		if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE parent_id = ? AND parent_id != '' AND revoked_at = 0`, unixNano(at), id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at = 0`, unixNano(at), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists int
			tx.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE id = ?`, id).Scan(&exists)
			if exists == 0 {
				return sluis.Errorf(sluis.ENOTFOUND, "no session %q", id)
			}
			return nil // revoked already
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM grants WHERE session_id = ?`, id)
		return err
	})
}

func (s *DB) RevokeSessions(ctx context.Context, f sluis.SessionFilter, at time.Time) ([]string, error) {
	var where string
	var arg any
	switch {
	case f.All:
		where, arg = "1 = ?", 1
	case f.User != "":
		where, arg = "user = ?", f.User
	case f.Group != "":
		// Groups are stored comma-joined; names never hold a comma.
		where, arg = "user IN (SELECT name FROM users WHERE ',' || groups || ',' LIKE '%,' || ? || ',%')", f.Group
	case f.Host != "":
		where, arg = "id IN (SELECT session_id FROM session_tokens WHERE host = ?)", f.Host
	default:
		return nil, sluis.Errorf(sluis.EINVALID, "no sessions selected")
	}
	var ids []string
	err := s.changeTx(ctx, func(tx *sql.Tx) error {
		// f.Keep "" matches no session (IDs are never empty).
		rows, err := tx.QueryContext(ctx, `SELECT id FROM sessions WHERE revoked_at = 0 AND `+where+` AND id <> ? ORDER BY created_at, id`, arg, f.Keep)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if f.Host == "" {
			// Revoking a user's sessions (by user, group or all) forgets
			// their known browsers too; an app's kill switch does not.
			// The filter speaks of a user column, which known_browsers has.
			if _, err := tx.ExecContext(ctx, `DELETE FROM known_browsers WHERE `+where, arg); err != nil {
				return err
			}
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE id = ?`, unixNano(at), id); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM grants WHERE session_id = ?`, id); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

func (s *DB) AddKnownBrowser(ctx context.Context, b sluis.KnownBrowser, tokenHash []byte) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO known_browsers (token_hash, id, user, created_at) VALUES (?, ?, ?, ?)`,
			tokenHash, b.ID, b.User, unixNano(b.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM known_browsers WHERE user = ? AND token_hash NOT IN
			(SELECT token_hash FROM known_browsers WHERE user = ? ORDER BY created_at DESC, id LIMIT ?)`, b.User, b.User, sluis.MaxKnownBrowsers)
		return err
	})
}

func (s *DB) KnownBrowser(ctx context.Context, tokenHash []byte) (sluis.KnownBrowser, error) {
	var b sluis.KnownBrowser
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT id, user, created_at FROM known_browsers WHERE token_hash = ?`, tokenHash).Scan(&b.ID, &b.User, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return b, sluis.Errorf(sluis.ENOTFOUND, "no such browser")
	}
	b.CreatedAt = fromNano(created)
	return b, err
}

func (s *DB) CreateGrant(ctx context.Context, codeHash []byte, sessionID, host, path string, state []byte, expires time.Time) error {
	if state == nil {
		state = []byte{}
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO grants (hash, session_id, host, path, state, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		codeHash, sessionID, host, path, state, unixNano(expires))
	return err
}

func (s *DB) RedeemGrant(ctx context.Context, codeHash []byte, host string, now time.Time) (string, string, []byte, error) {
	var sessionID, grantHost, path string
	var state []byte
	var expires int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The grant is deleted whether or not it is still valid: a code is
		// consumed by its first use, successful or not.
		err := tx.QueryRowContext(ctx, `DELETE FROM grants WHERE hash = ? RETURNING session_id, host, path, state, expires_at`, codeHash).
			Scan(&sessionID, &grantHost, &path, &state, &expires)
		if errors.Is(err, sql.ErrNoRows) {
			return sluis.Errorf(sluis.ENOTFOUND, "unknown or used code")
		}
		if err != nil {
			return err
		}
		// Expired grants of anyone are swept on the way.
		_, err = tx.ExecContext(ctx, `DELETE FROM grants WHERE expires_at <= ?`, now.UnixNano())
		return err
	})
	if err != nil {
		return "", "", nil, err
	}
	if grantHost != host {
		// The deletion stands: a code shown to the wrong host may have
		// leaked, so it is burnt.
		return "", "", nil, sluis.Errorf(sluis.ENOTFOUND, "unknown or used code")
	}
	if now.UnixNano() >= expires {
		return "", "", nil, sluis.Errorf(sluis.ENOTFOUND, "expired code")
	}
	return sessionID, path, state, nil
}

// ---- audit ----

// AppendEvent appends e to the hash chain: in one transaction (which holds
// the write lock, so the CLI and the gateway never fork the chain) it reads
// the last event, numbers e after it and chains its hash.
func (s *DB) AppendEvent(ctx context.Context, e sluis.Event) (sluis.Event, error) {
	out, err := s.AppendEvents(ctx, []sluis.Event{e})
	if err != nil {
		return e, err
	}
	return out[0], nil
}

// AppendEvents appends es to the hash chain in one transaction (which
// holds the write lock, so the CLI and the gateway never fork the chain):
// it reads the last event, then numbers and chains each event after it.
func (s *DB) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	var out []sluis.Event
	err := s.rawTx(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = s.appendEvents(ctx, tx, es)
		return err
	})
	return out, err
}

const (
	lastEventSQL   = `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`
	insertEventSQL = `INSERT INTO audit_events (id, time, type, user, source, app, outcome, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// appendEvents appends es to the chain inside tx: it reads the last event,
// then numbers and chains each event after it. The statements are the
// prepared ones when they could be prepared, else parsed here.
func (s *DB) appendEvents(ctx context.Context, tx *sql.Tx, es []sluis.Event) ([]sluis.Event, error) {
	st := &s.appendStmts
	st.once.Do(func() {
		last, err1 := s.db.PrepareContext(context.WithoutCancel(ctx), lastEventSQL)
		insert, err2 := s.db.PrepareContext(context.WithoutCancel(ctx), insertEventSQL)
		if err1 == nil && err2 == nil {
			st.last, st.insert = last, insert
		}
	})
	var row *sql.Row
	insert := func(args ...any) error {
		_, err := tx.ExecContext(ctx, insertEventSQL, args...)
		return err
	}
	if st.last != nil {
		row = tx.StmtContext(ctx, st.last).QueryRowContext(ctx)
		ins := tx.StmtContext(ctx, st.insert)
		insert = func(args ...any) error {
			_, err := ins.ExecContext(ctx, args...)
			return err
		}
	} else {
		row = tx.QueryRowContext(ctx, lastEventSQL)
	}
	out := make([]sluis.Event, len(es))
	var lastID int64
	var prev []byte
	err := row.Scan(&lastID, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	if prev == nil {
		prev = []byte{}
	}
	for i, e := range es {
		if e.Time.IsZero() {
			e.Time = time.Now().UTC()
		}
		e.ID, e.PrevHash = lastID+1, prev
		e.Time = fromNano(unixNano(e.Time)) // as stored
		e.Hash = e.ChainHash(e.PrevHash)
		if err := insert(e.ID, unixNano(e.Time), e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail, e.PrevHash, e.Hash); err != nil {
			return nil, err
		}
		out[i] = e
		lastID, prev = e.ID, e.Hash
	}
	return out, nil
}

// Events reads the events since by the index on time and sorts them by
// ID, so `sluis audit --since 1h` costs what the last hour holds. Asked
// for time >= ? in ID order, SQLite's planner otherwise walks the whole
// table in ID order and skips what is older; starting that walk at the
// first ID the index finds is no better when an early event is stamped
// late (a clock stepped back between nodes).
func (s *DB) Events(ctx context.Context, since time.Time) ([]sluis.Event, error) {
	var out []sluis.Event
	if since.IsZero() {
		err := s.scanEvents(ctx, &out, `SELECT id, time, type, user, source, app, outcome, detail, prev_hash, hash FROM audit_events ORDER BY id`)
		return out, err
	}
	err := s.scanEvents(ctx, &out, `SELECT id, time, type, user, source, app, outcome, detail, prev_hash, hash FROM audit_events
		INDEXED BY audit_events_time WHERE time >= ? ORDER BY id`, unixNano(since))
	return out, err
}

// EventsByID reads one batch by the primary key, from the first event at
// or after since (by the index on time) when after is before it. Each
// batch costs what it holds; all of them together read the table once
// from that first event on.
func (s *DB) EventsByID(ctx context.Context, since time.Time, after int64, limit int) ([]sluis.Event, error) {
	if err := sluis.CheckEventsBatch(after, limit); err != nil {
		return nil, err
	}
	from := after + 1
	if after == 0 {
		// A reader starts at 0: the search by time is made once, for
		// the first batch.
		first, err := s.firstSince(ctx, since)
		if err != nil {
			return nil, err
		}
		from = max(from, first)
	}
	out := make([]sluis.Event, 0, min(limit, 1000))
	err := s.scanEvents(ctx, &out, `SELECT id, time, type, user, source, app, outcome, detail, prev_hash, hash FROM audit_events
		WHERE id >= ? AND time >= ? ORDER BY id LIMIT ?`, from, unixNano(since), limit)
	return out, err
}

// firstSince returns the ID of the first event at or after since, by the
// index on time (it reads as many index entries as there are such
// events), 1 for a zero since, and past the last ID when there is none.
// IDs and times may disagree in order (clocks of several nodes), so the
// callers still filter by time from there.
func (s *DB) firstSince(ctx context.Context, since time.Time) (int64, error) {
	if since.IsZero() {
		return 1, nil
	}
	var first sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT min(id) FROM audit_events INDEXED BY audit_events_time WHERE time >= ?`, unixNano(since)).Scan(&first); err != nil {
		return 0, err
	}
	if !first.Valid {
		return math.MaxInt64, nil
	}
	return first.Int64, nil
}

func (s *DB) scanEvents(ctx context.Context, out *[]sluis.Event, query string, args ...any) error {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var e sluis.Event
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Type, &e.User, &e.Source, &e.App, &e.Outcome, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		e.Time = fromNano(t)
		*out = append(*out, e)
	}
	return rows.Err()
}

// indexedErrorID is the length of the error IDs the gateway writes
// (errpage.NewID: 6 random bytes in hex), which a search finds by index.
const indexedErrorID = 12

// SearchEvents reads one page newest first. The filters of q each have an
// index that ends in (time, id) (migration 0018), so a page reads about
// as many rows as it shows. An error ID of 12 hex digits is found by the
// index of the details that end with it, as the gateway writes them
// ("...; error ID 0a1b2c3d4e5f"); another length reads the whole trail.
// NamesErrorID then has the last word.
func (s *DB) SearchEvents(ctx context.Context, q sluis.AuditQuery) (sluis.AuditPage, error) {
	limit, err := q.Check()
	if err != nil {
		return sluis.AuditPage{}, err
	}
	where, args := []string{"1 = 1"}, []any{}
	add := func(cond string, arg any) { where, args = append(where, cond), append(args, arg) }
	if !q.Since.IsZero() {
		add("time >= ?", unixNano(q.Since))
	}
	if !q.Until.IsZero() {
		add("time < ?", unixNano(q.Until))
	}
	for _, f := range [...]struct{ col, v string }{{"type", q.Type}, {"user", q.User}, {"source", q.Source}, {"app", q.App}} {
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	switch {
	case len(q.ErrorID) == indexedErrorID:
		// The gateway's IDs, ending the detail, by the index of migration
		// 0018 (the expressions must be the index's).
		where = append(where, "instr(detail, 'error ID ') > 0")
		add("substr(detail, -12) = ?", strings.ToLower(q.ErrorID))
	case q.ErrorID != "":
		// Hex digits only (Check), so nothing in it is a LIKE pattern;
		// SQLite's LIKE ignores ASCII case. This reads the whole trail.
		add("detail LIKE ?", "%error id "+q.ErrorID+"%")
	}
	if q.Before != 0 {
		var t int64
		err := s.db.QueryRowContext(ctx, `SELECT time FROM audit_events WHERE id = ?`, q.Before).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			return sluis.AuditPage{}, sluis.Errorf(sluis.EINVALID, "no event %d to page on from", q.Before)
		} else if err != nil {
			return sluis.AuditPage{}, err
		}
		where, args = append(where, "(time, id) < (?, ?)"), append(args, t, q.Before)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, type, user, source, app, outcome, detail, prev_hash, hash FROM audit_events WHERE `+
		strings.Join(where, " AND ")+` ORDER BY time DESC, id DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return sluis.AuditPage{}, err
	}
	defer rows.Close()
	var page sluis.AuditPage
	var lastRead int64
	for n := 0; rows.Next(); n++ {
		var e sluis.Event
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Type, &e.User, &e.Source, &e.App, &e.Outcome, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return sluis.AuditPage{}, err
		}
		if n == limit {
			page.Next = lastRead
			break
		}
		e.Time = fromNano(t)
		lastRead = e.ID
		if q.ErrorID == "" || sluis.NamesErrorID(e.Detail, q.ErrorID) {
			page.Events = append(page.Events, e)
		}
	}
	return page, rows.Err()
}

// CountEvents counts by type and bucket with the index on (type, time),
// reading no row of the table.
func (s *DB) CountEvents(ctx context.Context, types []string, since, until time.Time, bucket time.Duration) ([]sluis.EventCount, error) {
	if err := sluis.CheckCount(types, since, until, bucket); err != nil {
		return nil, err
	}
	from, b := unixNano(since), int64(bucket)
	args := []any{from, b}
	for _, t := range types {
		args = append(args, t)
	}
	args = append(args, from, unixNano(until))
	rows, err := s.db.QueryContext(ctx, `SELECT type, (time - ?) / ? AS bucket, count(*) FROM audit_events
		WHERE type IN (?`+strings.Repeat(", ?", len(types)-1)+`) AND time >= ? AND time < ? GROUP BY type, bucket ORDER BY type, bucket`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.EventCount
	for rows.Next() {
		var c sluis.EventCount
		var i int64
		if err := rows.Scan(&c.Type, &i, &c.N); err != nil {
			return nil, err
		}
		c.Start = since.Add(time.Duration(i) * bucket)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *DB) LastEvent(ctx context.Context) (int64, []byte, error) {
	var id int64
	var hash []byte
	err := s.db.QueryRowContext(ctx, `SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1`).Scan(&id, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return id, hash, err
}

func (s *DB) AppendCheckpoint(ctx context.Context, c sluis.Checkpoint) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO audit_checkpoints (event_id, hash, time, signature) VALUES (?, ?, ?, ?)`,
		c.EventID, c.Hash, unixNano(c.Time), c.Signature)
	return err
}

func (s *DB) Checkpoints(ctx context.Context) ([]sluis.Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, event_id, hash, time, signature FROM audit_checkpoints ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.Checkpoint
	for rows.Next() {
		var c sluis.Checkpoint
		var t int64
		if err := rows.Scan(&c.ID, &c.EventID, &c.Hash, &t, &c.Signature); err != nil {
			return nil, err
		}
		c.Time = fromNano(t)
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *DB) SetAppDisabled(ctx context.Context, name string, disabled bool, reason string, at time.Time) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		if !disabled {
			_, err := tx.ExecContext(ctx, `DELETE FROM disabled_apps WHERE name = ?`, name)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO disabled_apps (name, reason, changed_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, changed_at = excluded.changed_at`, name, reason, unixNano(at))
		return err
	})
}

func (s *DB) DisabledApps(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, reason FROM disabled_apps`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, reason string
		if err := rows.Scan(&name, &reason); err != nil {
			return nil, err
		}
		out[name] = reason
	}
	return out, rows.Err()
}

func (s *DB) AddBlock(ctx context.Context, b sluis.Block) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		if b.Auto {
			if _, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE auto AND until != 0 AND until <= ?`, unixNano(b.CreatedAt)); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO blocks (cidr, reason, until, auto, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (cidr) DO UPDATE SET reason = excluded.reason, until = excluded.until, auto = excluded.auto, created_at = excluded.created_at
			WHERE blocks.auto OR NOT excluded.auto`,
			b.CIDR, b.Reason, unixNano(b.Until), b.Auto, unixNano(b.CreatedAt))
		return err
	})
}

func (s *DB) RemoveBlock(ctx context.Context, cidr string) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM blocks WHERE cidr = ?`, cidr)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no block of %s", cidr)
		}
		return nil
	})
}

func (s *DB) Blocks(ctx context.Context) ([]sluis.Block, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT cidr, reason, until, auto, created_at FROM blocks ORDER BY created_at, cidr`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sluis.Block
	for rows.Next() {
		var b sluis.Block
		var until, created int64
		if err := rows.Scan(&b.CIDR, &b.Reason, &until, &b.Auto, &created); err != nil {
			return nil, err
		}
		b.Until, b.CreatedAt = fromNano(until), fromNano(created)
		out = append(out, b)
	}
	return out, rows.Err()
}

func (s *DB) SetEmergency(ctx context.Context, e sluis.Emergency) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO emergency (id, level, reason, previous, until, set_by, set_at) VALUES (1, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET level = excluded.level, reason = excluded.reason, previous = excluded.previous,
			until = excluded.until, set_by = excluded.set_by, set_at = excluded.set_at`,
			e.Level, e.Reason, e.Previous, unixNano(e.Until), e.SetBy, unixNano(e.SetAt))
		return err
	})
}

func (s *DB) Emergency(ctx context.Context) (sluis.Emergency, error) {
	var e sluis.Emergency
	var until, at int64
	err := s.db.QueryRowContext(ctx, `SELECT level, reason, previous, until, set_by, set_at FROM emergency WHERE id = 1`).
		Scan(&e.Level, &e.Reason, &e.Previous, &until, &e.SetBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return sluis.Emergency{}, nil
	}
	e.Until, e.SetAt = fromNano(until), fromNano(at)
	return e, err
}

func (s *DB) RefreshMFA(ctx context.Context, id string, at time.Time, method string) error {
	return s.changeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sessions SET mfa_at = ?, mfa_method = ? WHERE id = ? AND stage = ? AND revoked_at = 0`, unixNano(at), method, id, sluis.StageComplete)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no live session %q", id)
		}
		return nil
	})
}

// ---- export ----

// Export hands every table of the store to table, for copying the store
// elsewhere (`sluis store copy`): its name, its column names, and its rows
// in the order they were written (audit events by number), each value as
// SQLite keeps it (int64, float64, string, []byte or nil). Everything is
// read in one transaction, which holds the write lock, so the copy is of
// one moment and no writer slips in between two tables. Users come first
// and sessions second, before the tables that refer to them; the
// bookkeeping of migrations (schema_migrations) and of SQLite itself is
// left out.
func (s *DB) Export(ctx context.Context, table func(name string, cols []string, rows iter.Seq2[[]any, error]) error) error {
	return s.rawTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'table'
			AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name != 'schema_migrations'
			ORDER BY name != 'users', name != 'sessions', rowid`)
		if err != nil {
			return err
		}
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			names = append(names, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, name := range names {
			if err := exportTable(ctx, tx, name, table); err != nil {
				return fmt.Errorf("table %s: %w", name, err)
			}
		}
		return nil
	})
}

func exportTable(ctx context.Context, tx *sql.Tx, name string, table func(string, []string, iter.Seq2[[]any, error]) error) error {
	// The name comes from sqlite_master, not from input; quoted all the
	// same.
	rows, err := tx.QueryContext(ctx, `SELECT * FROM "`+strings.ReplaceAll(name, `"`, `""`)+`" ORDER BY rowid`)
	if err != nil {
		// A table WITHOUT ROWID has none; none of ours is.
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	seq := func(yield func([]any, error) bool) {
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				yield(nil, err)
				return
			}
			if !yield(vals, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, err)
		}
	}
	return table(name, cols, seq)
}

// UpdateCounter runs in one write transaction (taken at BEGIN), which
// orders it after every other write.
func (s *DB) UpdateCounter(ctx context.Context, key string, now time.Time, fn func(c *sluis.Counter) bool) (sluis.Counter, error) {
	var out sluis.Counter
	err := s.rawTx(ctx, func(tx *sql.Tx) error {
		c, err := readCounter(ctx, tx, key, now)
		if err != nil {
			return err
		}
		if !fn(&c) {
			out = c
			return nil
		}
		out = c
		_, err = tx.ExecContext(ctx, `INSERT INTO counters (key, n, until_at, last_at, expires) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET n = excluded.n, until_at = excluded.until_at, last_at = excluded.last_at, expires = excluded.expires`,
			key, c.N, unixNano(c.Until), unixNano(c.Last), unixNano(c.Expires))
		return err
	})
	return out, err
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func readCounter(ctx context.Context, q querier, key string, now time.Time) (sluis.Counter, error) {
	var n int
	var until, last, expires int64
	err := q.QueryRowContext(ctx, `SELECT n, until_at, last_at, expires FROM counters WHERE key = ? AND expires > ?`, key, unixNano(now)).
		Scan(&n, &until, &last, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return sluis.Counter{}, nil
	}
	if err != nil {
		return sluis.Counter{}, err
	}
	return sluis.Counter{N: n, Until: fromNano(until), Last: fromNano(last), Expires: fromNano(expires)}, nil
}

func (s *DB) ReadCounter(ctx context.Context, key string, now time.Time) (sluis.Counter, error) {
	return readCounter(ctx, s.db, key, now)
}

func (s *DB) DeleteCounter(ctx context.Context, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM counters WHERE key = ?`, key)
	return err
}

func (s *DB) PurgeCounters(ctx context.Context, now time.Time, max int) (int64, error) {
	var deleted int64
	err := s.rawTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM counters WHERE expires <= ?`, unixNano(now))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		deleted = n
		if _, err := tx.ExecContext(ctx, `DELETE FROM counter_shares WHERE expires <= ?`, unixNano(now)); err != nil {
			return err
		}
		res, err = tx.ExecContext(ctx, `DELETE FROM counters WHERE key IN (SELECT key FROM counters ORDER BY until_at > ? DESC, last_at DESC LIMIT -1 OFFSET ?)`,
			unixNano(now), max)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		deleted += n
		return nil
	})
	return deleted, err
}

// TryLease: the one node of SQLite holds every lease it asks for, unless
// another process on the same database holds it (two `sluis serve` on one
// data_dir are refused anyway; see datadir.Lock).
func (s *DB) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	now := time.Now().UnixNano()
	res, err := s.db.ExecContext(ctx, `INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires <= ?`, name, holder, now+ttl.Nanoseconds(), now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

func (s *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM leases WHERE name = ? AND holder = ?`, name, holder)
	return err
}

// AddShare runs in one write transaction, which orders it after every
// other write.
func (s *DB) AddShare(ctx context.Context, key, holder string, delta, limit int, now, expires time.Time) (bool, error) {
	ok := false
	err := s.rawTx(ctx, func(tx *sql.Tx) error {
		if delta > 0 {
			var sum int
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0) FROM counter_shares WHERE key = ? AND expires > ?`, key, unixNano(now)).Scan(&sum); err != nil {
				return err
			}
			if sum+delta > limit {
				return nil
			}
		}
		ok = true
		_, err := tx.ExecContext(ctx, `INSERT INTO counter_shares (key, holder, n, expires) VALUES (?1, ?2, max(?3, 0), ?4)
			ON CONFLICT (key, holder) DO UPDATE SET n = max(counter_shares.n + ?3, 0), expires = excluded.expires`,
			key, holder, delta, unixNano(expires))
		return err
	})
	return ok && err == nil, err
}

func (s *DB) RenewShares(ctx context.Context, holder string, expires time.Time) error {
	return s.rawTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM counter_shares WHERE holder = ? AND n <= 0`, holder); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE counter_shares SET expires = ? WHERE holder = ?`, unixNano(expires), holder)
		return err
	})
}
