// Package postgres is the store of sluis for several nodes: one PostgreSQL
// database that every gateway node and the operator's CLI share, through
// a pool of connections (github.com/jackc/pgx/v5).
//
// It passes the same suite as the embedded SQLite store (store/storetest).
// Where SQLite's single writer made an operation safe, this store says how
// it stays safe with writers on several nodes:
//
//   - the revision is a one-row counter advanced in the transaction of
//     every change that can take access away; the row's lock orders those
//     transactions, so the number only grows. The same transaction
//     notifies the new number (pg_notify, sent at commit), so that nodes
//     that Listen count the change at once;
//   - the audit chain has a head row (the newest event's ID and hash),
//     locked with SELECT ... FOR UPDATE by every append, so appends from
//     several nodes queue up and never fork the chain;
//   - a new user takes a transaction-scoped advisory lock, so two nodes
//     cannot create Alice and alice at once;
//   - migrations run under a session-level advisory lock, each in its own
//     transaction, so nodes that start at once apply each migration once.
//
// Locks are always taken in this order: the user-creation lock, the
// revision row, the audit head.
package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sluis-gateway/sluis"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys (in the database's own key space).
const (
	migrationLock   int64 = 0x736c756973_01 // "sluis" 1: schema migrations
	createUserLock  int64 = 0x736c756973_02 // "sluis" 2: creating a user (no twins)
	importStoreLock int64 = 0x736c756973_03 // "sluis" 3: filling an empty store (Import)
)

// DB is a sluis.Store in a PostgreSQL database.
type DB struct {
	pool *pgxpool.Pool

	// Changed, if set, is called after every committed change that
	// advanced the revision, so the process can tell whoever caches
	// (see package changes). Set it before use.
	Changed func(ctx context.Context)
}

var _ sluis.Store = (*DB)(nil)

// Redact returns the URL with its password, if any, replaced by "xxxxx",
// for messages and logs.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}

// Open connects to the database at the URL (postgres://...), and brings
// its schema up to date. Errors never show the URL's password.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		// pgx's own message may quote the URL; ours does not.
		return nil, fmt.Errorf("database URL %s does not parse", Redact(rawURL))
	}
	name := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	s := &DB{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	return s, nil
}

// Close closes the pool.
func (s *DB) Close() error {
	s.pool.Close()
	return nil
}

// migrate applies the embedded migrations that have not run yet, each in
// its own transaction, in file-name order, all under an advisory lock: a
// node that starts while another migrates waits, then finds the work done.
func (s *DB) migrate(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("migrations: waiting for the lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock); err != nil {
			// The lock goes with the connection.
			conn.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
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
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE name = $1`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (name) VALUES ($1)`, name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", name, err)
		}
	}
	return nil
}

// Ready reports whether the store can be used now: the server answers,
// and every migration this binary knows has been applied. A schema that
// is newer (a newer node migrated it during a rolling upgrade) counts as
// ready: its migrations are the upgrade's business. The gateway's
// /readyz asks it, bounded by its own timeout.
func (s *DB) Ready(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	rows, err := s.pool.Query(ctx, `SELECT name FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	for _, name := range names {
		if !slices.Contains(applied, name) {
			return fmt.Errorf("database: migration %s has not been applied", name)
		}
	}
	return nil
}

// tx runs fn in a transaction. The events ctx carries (sluis.WithEvents)
// are appended to the audit chain in the same transaction, so a change
// and its record commit together or not at all.
func (s *DB) tx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if es := sluis.EventsOf(ctx); len(es) > 0 {
			if _, err := appendEvents(ctx, tx, es); err != nil {
				return fmt.Errorf("recording the change in the audit trail: %w", err)
			}
		}
		return nil
	})
}

// changeTx runs fn in a transaction that also advances the revision, for
// every change that can take access away, and calls Changed after commit.
func (s *DB) changeTx(ctx context.Context, fn func(pgx.Tx) error) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		// The notification goes out at commit, to every node that
		// listens (Listen); it carries the new revision, which a
		// listener only takes as a reason to read the revision again.
		_, err := tx.Exec(ctx, `WITH r AS (UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value)
			SELECT pg_notify('`+revisionChannel+`', value::text) FROM r`)
		return err
	})
	if err == nil && s.Changed != nil {
		s.Changed(ctx)
	}
	return err
}

// revisionChannel is the channel of LISTEN/NOTIFY on which every change
// that advances the revision is announced.
const revisionChannel = "sluis_revision"

// Listen tells changed of every change that advanced the revision, made
// through any node, as soon as it commits (LISTEN/NOTIFY on a connection
// of its own), until ctx ends. It also calls changed after each
// (re)connection, since notifications sent while it was away are lost,
// and it connects again after an error, waiting retry between tries
// (zero means 1s). A node still reads the revision every second (package
// changes) whatever happens here: this only makes changes count sooner.
func (s *DB) Listen(ctx context.Context, changed func(ctx context.Context), retry time.Duration, onError func(error)) {
	if retry <= 0 {
		retry = time.Second
	}
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		if onError != nil {
			onError(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(retry):
		}
	}
}

func (s *DB) listenOnce(ctx context.Context, changed func(ctx context.Context)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool: it is LISTENing, and is closed
	// when this ends.
	c := conn.Hijack()
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, `LISTEN `+revisionChannel); err != nil {
		return err
	}
	changed(ctx)
	for {
		if _, err := c.WaitForNotification(ctx); err != nil {
			return err
		}
		changed(ctx)
	}
}

// Revision reads the revision row: one indexed read of one row. The
// gateway reads it through package changes (once a second, and when
// told of a change), not on every request.
func (s *DB) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.pool.QueryRow(ctx, `SELECT value FROM revision WHERE id = 1`).Scan(&rev)
	return rev, err
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

// groups is a user's groups as stored: never NULL.
func groups(g []string) []string {
	if g == nil {
		return []string{}
	}
	return g
}

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// nullBlob stores an empty secret as NULL.
func nullBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// blob stores b in a NOT NULL bytea column.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return sluis.Errorf(sluis.ENOTFOUND, format, args...)
	}
	return err
}

// ---- users ----

var errTwin = errors.New("a user of that name in other case exists")

func (s *DB) CreateUser(ctx context.Context, u sluis.User) error {
	var inserted bool
	// A change transaction, so that a running gateway and the operator's
	// checkpoint hear of it like any other change. The advisory lock
	// makes the check for a twin and the insert one step across nodes.
	err := s.changeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, createUserLock); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx,
			`INSERT INTO users (name, groups, password_hash, disabled, totp_secret, created_at, source, external_id, email, display_name)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE NOT EXISTS (SELECT 1 FROM users WHERE lower(name) = lower($1))`,
			u.Name, groups(u.Groups), u.PasswordHash, u.Disabled, nullBlob(u.TOTPSecret), unixNano(u.CreatedAt), u.Source, u.ExternalID, u.Email, u.DisplayName)
		if err != nil {
			return err
		}
		if inserted = tag.RowsAffected() == 1; !inserted {
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
	if !inserted {
		twins, _ := s.UsersNamed(ctx, u.Name)
		other := u.Name
		if len(twins) > 0 {
			other = twins[0].Name
		}
		return sluis.Errorf(sluis.ECONFLICT, "user %q exists already (names are compared without regard to case)", other)
	}
	return nil
}

const userCols = `name, groups, password_hash, disabled, totp_secret, created_at, source, external_id, email, display_name`

func scanUser(sc pgx.Row) (sluis.User, error) {
	var u sluis.User
	var created int64
	err := sc.Scan(&u.Name, &u.Groups, &u.PasswordHash, &u.Disabled, &u.TOTPSecret, &created, &u.Source, &u.ExternalID, &u.Email, &u.DisplayName)
	if len(u.Groups) == 0 {
		u.Groups = nil
	}
	if len(u.TOTPSecret) == 0 {
		u.TOTPSecret = nil
	}
	u.CreatedAt = fromNano(created)
	return u, err
}

func (s *DB) User(ctx context.Context, name string) (sluis.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = $1`, name))
	return u, notFound(err, "no user %q", name)
}

func (s *DB) UsersNamed(ctx context.Context, name string) ([]sluis.User, error) {
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users WHERE lower(name) = lower($1) ORDER BY name`, name)
}

func (s *DB) Users(ctx context.Context) ([]sluis.User, error) {
	return s.queryUsers(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
}

func (s *DB) queryUsers(ctx context.Context, query string, args ...any) ([]sluis.User, error) {
	rows, err := s.pool.Query(ctx, query, args...)
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

// updateUser runs one UPDATE on a user, advancing the revision, and
// reports a missing user as ENOTFOUND.
func (s *DB) updateUser(ctx context.Context, name, query string, args ...any) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, query, args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no user %q", name)
		}
		return nil
	})
}

func (s *DB) SetPassword(ctx context.Context, name, hash string) error {
	return s.updateUser(ctx, name, `UPDATE users SET password_hash = $1 WHERE name = $2`, hash, name)
}

func (s *DB) SetGroups(ctx context.Context, name string, g []string) error {
	return s.updateUser(ctx, name, `UPDATE users SET groups = $1 WHERE name = $2`, groups(g), name)
}

func (s *DB) SetDisabled(ctx context.Context, name string, disabled bool) error {
	return s.updateUser(ctx, name, `UPDATE users SET disabled = $1 WHERE name = $2`, disabled, name)
}

func (s *DB) SetExternalID(ctx context.Context, name, id string) error {
	return s.updateUser(ctx, name, `UPDATE users SET external_id = $1 WHERE name = $2`, id, name)
}

func (s *DB) SetProfile(ctx context.Context, name, email, displayName string) error {
	return s.updateUser(ctx, name, `UPDATE users SET email = $1, display_name = $2 WHERE name = $3`, email, displayName, name)
}

func (s *DB) SetTOTP(ctx context.Context, name string, sealed []byte) error {
	return s.updateUser(ctx, name, `UPDATE users SET totp_secret = $1, totp_last_step = 0 WHERE name = $2`, nullBlob(sealed), name)
}

// UseTOTPStep is one conditional UPDATE: the row lock makes two nodes
// checking the same code at once see each other.
func (s *DB) UseTOTPStep(ctx context.Context, name string, step int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET totp_last_step = $1 WHERE name = $2 AND totp_last_step < $1`, step, name)
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// ---- passkeys ----

func (s *DB) PasskeyHandle(ctx context.Context, user string, create bool) ([]byte, error) {
	var h []byte
	err := s.pool.QueryRow(ctx, `SELECT passkey_handle FROM users WHERE name = $1`, user).Scan(&h)
	if err != nil {
		return nil, notFound(err, "no user %q", user)
	}
	if len(h) > 0 {
		return h, nil
	}
	if !create {
		return nil, sluis.Errorf(sluis.ENOTFOUND, "user %q has no passkey handle", user)
	}
	h = make([]byte, 32)
	rand.Read(h)
	// Only if still unset: two first enrolments at once get one handle.
	if _, err := s.pool.Exec(ctx, `UPDATE users SET passkey_handle = $1 WHERE name = $2 AND passkey_handle IS NULL`, h, user); err != nil {
		return nil, err
	}
	return s.PasskeyHandle(ctx, user, false)
}

func (s *DB) UserByPasskeyHandle(ctx context.Context, handle []byte) (string, error) {
	var name string
	err := s.pool.QueryRow(ctx, `SELECT name FROM users WHERE passkey_handle = $1`, handle).Scan(&name)
	return name, notFound(err, "no user with this passkey handle")
}

func (s *DB) AddPasskey(ctx context.Context, k sluis.Passkey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO passkeys (id, user_name, name, data, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.ID, k.User, k.Name, blob(k.Data), unixNano(k.CreatedAt))
	if isUnique(err) {
		return sluis.Errorf(sluis.ECONFLICT, "a passkey with this name or ID exists")
	}
	return err
}

func (s *DB) Passkeys(ctx context.Context, user string) ([]sluis.Passkey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, user_name, name, data, created_at, last_used_at FROM passkeys WHERE user_name = $1 ORDER BY created_at, name`, user)
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
	tag, err := s.pool.Exec(ctx, `UPDATE passkeys SET data = $1, last_used_at = $2 WHERE id = $3`, blob(data), unixNano(at), id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return sluis.Errorf(sluis.ENOTFOUND, "no such passkey")
	}
	return nil
}

func (s *DB) RemovePasskey(ctx context.Context, user string, id []byte) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM passkeys WHERE user_name = $1 AND id = $2`, user, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no such passkey")
		}
		return nil
	})
}

func (s *DB) UseChallenge(ctx context.Context, hash []byte, expires time.Time) (bool, error) {
	var fresh bool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM spent_challenges WHERE expires_at < $1`, time.Now().Add(-time.Hour).UnixNano()); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO spent_challenges (hash, expires_at) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING`, hash, unixNano(expires))
		fresh = err == nil && tag.RowsAffected() == 1
		return err
	})
	return fresh, err
}

// ---- recovery codes ----

func (s *DB) SetRecoveryCodes(ctx context.Context, user string, hashes [][]byte) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_name = $1`, user); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.Exec(ctx, `INSERT INTO recovery_codes (user_name, hash) VALUES ($1, $2)`, user, h); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *DB) UseRecoveryCode(ctx context.Context, user string, hash []byte, at time.Time) (bool, int, error) {
	var ok bool
	var left int
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE recovery_codes SET used_at = $1 WHERE user_name = $2 AND hash = $3 AND used_at = 0`, unixNano(at), user, hash)
		if err != nil {
			return err
		}
		ok = tag.RowsAffected() == 1
		return tx.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_name = $1 AND used_at = 0`, user).Scan(&left)
	})
	return ok, left, err
}

func (s *DB) RecoveryCodesLeft(ctx context.Context, user string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_name = $1 AND used_at = 0`, user).Scan(&n)
	return n, err
}

func (s *DB) ResetMFA(ctx context.Context, user string) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE users SET totp_secret = NULL, totp_last_step = 0 WHERE name = $1`, user)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no user %q", user)
		}
		for _, q := range []string{`DELETE FROM passkeys WHERE user_name = $1`, `DELETE FROM recovery_codes WHERE user_name = $1`} {
			if _, err := tx.Exec(ctx, q, user); err != nil {
				return err
			}
		}
		return nil
	})
}

// ---- device grants ----

func (s *DB) CreateDeviceGrant(ctx context.Context, g sluis.DeviceGrant) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Expired grants go when new ones come.
		if _, err := tx.Exec(ctx, `DELETE FROM device_grants WHERE expires_at < $1`, unixNano(g.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO device_grants (device_hash, user_code, source, created_at, expires_at, state) VALUES ($1, $2, $3, $4, $5, $6)`,
			g.DeviceHash, g.UserCode, g.Source, unixNano(g.CreatedAt), unixNano(g.ExpiresAt), sluis.DevicePending)
		return err
	})
	if isUnique(err) {
		return sluis.Errorf(sluis.ECONFLICT, "device or user code taken")
	}
	return err
}

const deviceCols = `device_hash, user_code, source, created_at, expires_at, state, user_name, session_id, sealed_token`

func scanDevice(sc pgx.Row) (sluis.DeviceGrant, error) {
	var g sluis.DeviceGrant
	var created, expires int64
	err := sc.Scan(&g.DeviceHash, &g.UserCode, &g.Source, &created, &expires, &g.State, &g.User, &g.SessionID, &g.SealedToken)
	g.CreatedAt, g.ExpiresAt = fromNano(created), fromNano(expires)
	if len(g.SealedToken) == 0 {
		g.SealedToken = nil
	}
	return g, notFound(err, "no such login request, or it expired")
}

func (s *DB) PendingDeviceGrants(ctx context.Context, now time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM device_grants WHERE state = $1 AND expires_at > $2`, sluis.DevicePending, unixNano(now)).Scan(&n)
	return n, err
}

func (s *DB) DeviceGrantByUserCode(ctx context.Context, userCode string, now time.Time) (sluis.DeviceGrant, error) {
	return scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE user_code = $1 AND state = $2 AND expires_at > $3`,
		userCode, sluis.DevicePending, unixNano(now)))
}

func (s *DB) DecideDeviceGrant(ctx context.Context, userCode string, approve bool, user, sessionID string, sealedToken []byte, now time.Time) error {
	state := sluis.DeviceDenied
	if approve {
		state = sluis.DeviceApproved
	}
	tag, err := s.pool.Exec(ctx, `UPDATE device_grants SET state = $1, user_name = $2, session_id = $3, sealed_token = $4 WHERE user_code = $5 AND state = $6 AND expires_at > $7`,
		state, user, sessionID, nullBlob(sealedToken), userCode, sluis.DevicePending, unixNano(now))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return sluis.Errorf(sluis.ENOTFOUND, "no such login request, or it expired")
	}
	return nil
}

func (s *DB) TakeDeviceGrant(ctx context.Context, deviceHash []byte, now time.Time) (sluis.DeviceGrant, error) {
	// Most polls find the grant still pending: they read without a lock.
	g, err := scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE device_hash = $1 AND expires_at > $2`, deviceHash, unixNano(now)))
	if err != nil || g.State != sluis.DeviceApproved {
		return g, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// FOR UPDATE: of two polls at once (two nodes), the second waits
		// and then reads the grant taken.
		var err error
		g, err = scanDevice(tx.QueryRow(ctx, `SELECT `+deviceCols+` FROM device_grants WHERE device_hash = $1 AND expires_at > $2 FOR UPDATE`, deviceHash, unixNano(now)))
		if err != nil || g.State != sluis.DeviceApproved {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE device_grants SET state = $1, sealed_token = NULL WHERE device_hash = $2`, sluis.DeviceTaken, deviceHash)
		return err
	})
	return g, err
}

// ---- sessions ----

const sessionCols = `s.id, s.user_name, s.stage, s.created_at, s.last_seen, s.expires_at, s.mfa_at, s.mfa_method, s.source, s.user_agent, s.enroll_secret, s.revoked_at, s.parent_id`

func scanSession(sc pgx.Row) (sluis.Session, error) {
	var x sluis.Session
	var created, seen, expires, mfa, revoked int64
	err := sc.Scan(&x.ID, &x.User, &x.Stage, &created, &seen, &expires, &mfa, &x.MFAMethod, &x.Source, &x.UserAgent, &x.EnrollSecret, &revoked, &x.ParentID)
	x.CreatedAt, x.LastSeen, x.ExpiresAt = fromNano(created), fromNano(seen), fromNano(expires)
	x.MFAAt, x.RevokedAt = fromNano(mfa), fromNano(revoked)
	if len(x.EnrollSecret) == 0 {
		x.EnrollSecret = nil
	}
	return x, err
}

func (s *DB) CreateSession(ctx context.Context, x sluis.Session, tokenHash []byte, host string) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx,
			`INSERT INTO sessions (id, user_name, stage, created_at, last_seen, expires_at, mfa_at, mfa_method, source, user_agent, enroll_secret, parent_id)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			x.ID, x.User, x.Stage, unixNano(x.CreatedAt), unixNano(x.LastSeen), unixNano(x.ExpiresAt),
			unixNano(x.MFAAt), x.MFAMethod, x.Source, x.UserAgent, nullBlob(x.EnrollSecret), x.ParentID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES ($1, $2, $3)`, tokenHash, x.ID, host)
		return err
	})
}

func (s *DB) AddToken(ctx context.Context, sessionID string, tokenHash []byte, host string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES ($1, $2, $3)`, tokenHash, sessionID, host)
	return err
}

func (s *DB) SessionByToken(ctx context.Context, tokenHash []byte, host string) (sluis.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx,
		`SELECT `+sessionCols+` FROM session_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1 AND t.host = $2`,
		tokenHash, host))
	return x, notFound(err, "no such session")
}

func (s *DB) SessionHosts(ctx context.Context, id string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT host FROM session_tokens WHERE session_id = $1 ORDER BY host`, id)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *DB) Session(ctx context.Context, id string) (sluis.Session, error) {
	x, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions s WHERE s.id = $1`, id))
	return x, notFound(err, "no session %q", id)
}

func (s *DB) Sessions(ctx context.Context) ([]sluis.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionCols+` FROM sessions s ORDER BY s.created_at, s.id`)
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
	const live = `s.stage = 'complete' AND s.revoked_at = 0 AND s.expires_at > $1 AND s.last_seen >= $2`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sessions s WHERE `+live, unixNano(now), unixNano(seenSince)).Scan(&total); err != nil {
		return 0, nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT t.host, count(DISTINCT t.session_id) FROM session_tokens t JOIN sessions s ON s.id = t.session_id
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
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx,
			`UPDATE sessions SET stage = $1, mfa_at = $2, mfa_method = $3, expires_at = $4, enroll_secret = NULL WHERE id = $5 AND revoked_at = 0`,
			sluis.StageComplete, unixNano(mfaAt), method, unixNano(expiresAt), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no session %q", id)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM session_tokens WHERE session_id = $1`, id); err != nil {
			return err
		}
		// The old token is dead now; caches holding it must reload.
		_, err = tx.Exec(ctx, `INSERT INTO session_tokens (hash, session_id, host) VALUES ($1, $2, $3)`, tokenHash, id, host)
		return err
	})
}

func (s *DB) SetEnrollSecret(ctx context.Context, id string, sealed []byte) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET enroll_secret = $1 WHERE id = $2`, nullBlob(sealed), id)
	return err
}

func (s *DB) TouchSession(ctx context.Context, id string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen = $1 WHERE id = $2 AND last_seen < $1`, unixNano(at), id)
	return err
}

func (s *DB) RevokeSession(ctx context.Context, id string, at time.Time) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		// Sessions made from this one go with it.
		if _, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1 WHERE parent_id = $2 AND parent_id != '' AND revoked_at = 0`, unixNano(at), id); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at = 0`, unixNano(at), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var exists int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE id = $1`, id).Scan(&exists); err != nil {
				return err
			}
			if exists == 0 {
				return sluis.Errorf(sluis.ENOTFOUND, "no session %q", id)
			}
			return nil // revoked already
		}
		_, err = tx.Exec(ctx, `DELETE FROM grants WHERE session_id = $1`, id)
		return err
	})
}

func (s *DB) RevokeSessions(ctx context.Context, f sluis.SessionFilter, at time.Time) ([]string, error) {
	// where(n) selects by a user_name column, which sessions and
	// known_browsers both have, with arg as parameter $n.
	var where func(n int) string
	var arg any
	switch {
	case f.All:
		where, arg = func(n int) string { return fmt.Sprintf("$%d::text IS NOT NULL", n) }, ""
	case f.User != "":
		where, arg = func(n int) string { return fmt.Sprintf("user_name = $%d", n) }, f.User
	case f.Group != "":
		where, arg = func(n int) string {
			return fmt.Sprintf("user_name IN (SELECT name FROM users WHERE $%d = ANY (groups))", n)
		}, f.Group
	case f.Host != "":
		where, arg = func(n int) string {
			return fmt.Sprintf("id IN (SELECT session_id FROM session_tokens WHERE host = $%d)", n)
		}, f.Host
	default:
		return nil, sluis.Errorf(sluis.EINVALID, "no sessions selected")
	}
	var ids []string
	err := s.changeTx(ctx, func(tx pgx.Tx) error {
		ids = nil
		// f.Keep "" matches no session (IDs are never empty).
		rows, err := tx.Query(ctx, `UPDATE sessions SET revoked_at = $1 WHERE revoked_at = 0 AND `+where(2)+` AND id <> $3 RETURNING id, created_at`, unixNano(at), arg, f.Keep)
		if err != nil {
			return err
		}
		type revoked struct {
			id      string
			created int64
		}
		var rs []revoked
		for rows.Next() {
			var r revoked
			if err := rows.Scan(&r.id, &r.created); err != nil {
				rows.Close()
				return err
			}
			rs = append(rs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		slices.SortFunc(rs, func(a, b revoked) int {
			if c := cmp.Compare(a.created, b.created); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		for _, r := range rs {
			ids = append(ids, r.id)
		}
		if f.Host == "" {
			// Revoking a user's sessions (by user, group or all) forgets
			// their known browsers too; an app's kill switch does not.
			if _, err := tx.Exec(ctx, `DELETE FROM known_browsers WHERE `+where(1), arg); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM grants WHERE session_id = ANY ($1)`, ids)
		return err
	})
	return ids, err
}

func (s *DB) AddKnownBrowser(ctx context.Context, b sluis.KnownBrowser, tokenHash []byte) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO known_browsers (token_hash, id, user_name, created_at) VALUES ($1, $2, $3, $4)`,
			tokenHash, b.ID, b.User, unixNano(b.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM known_browsers WHERE user_name = $1 AND token_hash NOT IN
			(SELECT token_hash FROM known_browsers WHERE user_name = $1 ORDER BY created_at DESC, id LIMIT $2)`, b.User, sluis.MaxKnownBrowsers)
		return err
	})
}

func (s *DB) KnownBrowser(ctx context.Context, tokenHash []byte) (sluis.KnownBrowser, error) {
	var b sluis.KnownBrowser
	var created int64
	err := s.pool.QueryRow(ctx, `SELECT id, user_name, created_at FROM known_browsers WHERE token_hash = $1`, tokenHash).Scan(&b.ID, &b.User, &created)
	b.CreatedAt = fromNano(created)
	return b, notFound(err, "no such browser")
}

func (s *DB) CreateGrant(ctx context.Context, codeHash []byte, sessionID, host, path string, state []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO grants (hash, session_id, host, path, state, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		codeHash, sessionID, host, path, blob(state), unixNano(expires))
	return err
}

func (s *DB) RedeemGrant(ctx context.Context, codeHash []byte, host string, now time.Time) (string, string, []byte, error) {
	var sessionID, grantHost, path string
	var state []byte
	var expires int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// The grant is deleted whether or not it is still valid: a code is
		// consumed by its first use, successful or not. Of two nodes
		// redeeming it at once, one deletes it and the other finds none.
		err := tx.QueryRow(ctx, `DELETE FROM grants WHERE hash = $1 RETURNING session_id, host, path, state, expires_at`, codeHash).
			Scan(&sessionID, &grantHost, &path, &state, &expires)
		if err != nil {
			return notFound(err, "unknown or used code")
		}
		// Expired grants of anyone are swept on the way.
		_, err = tx.Exec(ctx, `DELETE FROM grants WHERE expires_at <= $1`, now.UnixNano())
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

func (s *DB) AppendEvent(ctx context.Context, e sluis.Event) (sluis.Event, error) {
	out, err := s.AppendEvents(ctx, []sluis.Event{e})
	if err != nil {
		return e, err
	}
	return out[0], nil
}

// AppendEvents appends es to the hash chain in one transaction.
func (s *DB) AppendEvents(ctx context.Context, es []sluis.Event) ([]sluis.Event, error) {
	var out []sluis.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		out, err = appendEvents(ctx, tx, es)
		return err
	})
	return out, err
}

// appendEvents appends es to the chain inside tx. It locks the chain's
// head row first: another node's append waits there until this
// transaction ends, and then reads the head this one wrote (in READ
// COMMITTED, a row locked FOR UPDATE is read again in its newest committed
// version), so the chain never forks and IDs have no gaps.
func appendEvents(ctx context.Context, tx pgx.Tx, es []sluis.Event) ([]sluis.Event, error) {
	var lastID int64
	var prev []byte
	if err := tx.QueryRow(ctx, `SELECT event_id, hash FROM audit_head WHERE id = 1 FOR UPDATE`).Scan(&lastID, &prev); err != nil {
		return nil, err
	}
	if prev == nil {
		prev = []byte{}
	}
	out := make([]sluis.Event, len(es))
	batch := &pgx.Batch{}
	for i, e := range es {
		if e.Time.IsZero() {
			e.Time = time.Now().UTC()
		}
		e.ID, e.PrevHash = lastID+1, prev
		e.Time = fromNano(unixNano(e.Time)) // as stored
		e.Hash = e.ChainHash(e.PrevHash)
		batch.Queue(`INSERT INTO audit_events (id, time, type, user_name, source, app, outcome, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			e.ID, unixNano(e.Time), e.Type, e.User, e.Source, e.App, e.Outcome, e.Detail, e.PrevHash, e.Hash)
		out[i] = e
		lastID, prev = e.ID, e.Hash
	}
	batch.Queue(`UPDATE audit_head SET event_id = $1, hash = $2 WHERE id = 1`, lastID, prev)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// Events reads the events since; PostgreSQL's planner, with its
// statistics, reads a recent part of a long trail by the index on
// (time, id) and sorts it.
func (s *DB) Events(ctx context.Context, since time.Time) ([]sluis.Event, error) {
	var out []sluis.Event
	err := s.scanEvents(ctx, &out, `SELECT id, time, type, user_name, source, app, outcome, detail, prev_hash, hash FROM audit_events
		WHERE time >= $1 ORDER BY id`, unixNano(since))
	return out, err
}

// EventsByID reads one batch by the primary key, from the first event at
// or after since when after is before it.
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
	err := s.scanEvents(ctx, &out, `SELECT id, time, type, user_name, source, app, outcome, detail, prev_hash, hash FROM audit_events
		WHERE id >= $1 AND time >= $2 ORDER BY id LIMIT $3`, from, unixNano(since), limit)
	return out, err
}

// firstSince returns the ID of the first event at or after since, 1 for a
// zero since, and past the last ID when there is none. min(id + 0), not
// min(id): PostgreSQL turns min(id) into a walk of the primary key from
// the start that stops at the first recent event, which reads the whole
// old trail; the expression keeps it on the index on (time, id), which it
// reads from since on. IDs and times may disagree in order (clocks of
// several nodes), so the callers still filter by time from there.
func (s *DB) firstSince(ctx context.Context, since time.Time) (int64, error) {
	if since.IsZero() {
		return 1, nil
	}
	var first *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(id + 0) FROM audit_events WHERE time >= $1`, unixNano(since)).Scan(&first); err != nil {
		return 0, err
	}
	if first == nil {
		return math.MaxInt64, nil
	}
	return *first, nil
}

func (s *DB) scanEvents(ctx context.Context, out *[]sluis.Event, query string, args ...any) error {
	rows, err := s.pool.Query(ctx, query, args...)
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
// index that ends in (time, id) (migration 0003), so a page reads about
// as many rows as it shows. An error ID of 12 hex digits is found by the
// index of the details that end with it, as the gateway writes them
// ("...; error ID 0a1b2c3d4e5f"); another length reads the whole trail.
// NamesErrorID then has the last word.
func (s *DB) SearchEvents(ctx context.Context, q sluis.AuditQuery) (sluis.AuditPage, error) {
	limit, err := q.Check()
	if err != nil {
		return sluis.AuditPage{}, err
	}
	where, args := []string{"true"}, []any{}
	add := func(cond string, arg ...any) {
		for i := range arg {
			cond = strings.Replace(cond, "?", fmt.Sprintf("$%d", len(args)+i+1), 1)
		}
		where, args = append(where, cond), append(args, arg...)
	}
	if !q.Since.IsZero() {
		add("time >= ?", unixNano(q.Since))
	}
	if !q.Until.IsZero() {
		add("time < ?", unixNano(q.Until))
	}
	for _, f := range [...]struct{ col, v string }{{"type", q.Type}, {"user_name", q.User}, {"source", q.Source}, {"app", q.App}} {
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	switch {
	case len(q.ErrorID) == indexedErrorID:
		// The gateway's IDs, ending the detail, by the index of migration
		// 0003 (the expressions must be the index's).
		where = append(where, "strpos(detail, 'error ID ') > 0")
		add("right(detail, 12) = ?", strings.ToLower(q.ErrorID))
	case q.ErrorID != "":
		// Hex digits only (Check), so nothing in it is a LIKE pattern.
		// This reads the whole trail.
		add("detail ILIKE ?", "%error id "+q.ErrorID+"%")
	}
	if q.Before != 0 {
		var t int64
		err := s.pool.QueryRow(ctx, `SELECT time FROM audit_events WHERE id = $1`, q.Before).Scan(&t)
		if errors.Is(err, pgx.ErrNoRows) {
			return sluis.AuditPage{}, sluis.Errorf(sluis.EINVALID, "no event %d to page on from", q.Before)
		} else if err != nil {
			return sluis.AuditPage{}, err
		}
		add("(time, id) < (?, ?)", t, q.Before)
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, `SELECT id, time, type, user_name, source, app, outcome, detail, prev_hash, hash FROM audit_events WHERE `+
		strings.Join(where, " AND ")+fmt.Sprintf(` ORDER BY time DESC, id DESC LIMIT $%d`, len(args)), args...)
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

// CountEvents counts by type and bucket with the index on (type, time).
func (s *DB) CountEvents(ctx context.Context, types []string, since, until time.Time, bucket time.Duration) ([]sluis.EventCount, error) {
	if err := sluis.CheckCount(types, since, until, bucket); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT type, (time - $1) / $2 AS bucket, count(*) FROM audit_events
		WHERE type = ANY($3) AND time >= $1 AND time < $4 GROUP BY type, bucket ORDER BY type, bucket`,
		unixNano(since), int64(bucket), types, unixNano(until))
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
	err := s.pool.QueryRow(ctx, `SELECT event_id, hash FROM audit_head WHERE id = 1`).Scan(&id, &hash)
	if id == 0 {
		hash = nil
	}
	return id, hash, err
}

func (s *DB) AppendCheckpoint(ctx context.Context, c sluis.Checkpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (event_id, hash, time, signature) VALUES ($1, $2, $3, $4)`,
		c.EventID, blob(c.Hash), unixNano(c.Time), blob(c.Signature))
	return err
}

func (s *DB) Checkpoints(ctx context.Context) ([]sluis.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, event_id, hash, time, signature FROM audit_checkpoints ORDER BY id`)
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

// ---- switches, blocks, emergency ----

func (s *DB) SetAppDisabled(ctx context.Context, name string, disabled bool, reason string, at time.Time) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		if !disabled {
			_, err := tx.Exec(ctx, `DELETE FROM disabled_apps WHERE name = $1`, name)
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO disabled_apps (name, reason, changed_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET reason = excluded.reason, changed_at = excluded.changed_at`, name, reason, unixNano(at))
		return err
	})
}

func (s *DB) DisabledApps(ctx context.Context) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, reason FROM disabled_apps`)
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
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		if b.Auto {
			if _, err := tx.Exec(ctx, `DELETE FROM blocks WHERE auto AND until != 0 AND until <= $1`, unixNano(b.CreatedAt)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO blocks (cidr, reason, until, auto, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (cidr) DO UPDATE SET reason = excluded.reason, until = excluded.until, auto = excluded.auto, created_at = excluded.created_at
			WHERE blocks.auto OR NOT excluded.auto`,
			b.CIDR, b.Reason, unixNano(b.Until), b.Auto, unixNano(b.CreatedAt))
		return err
	})
}

func (s *DB) RemoveBlock(ctx context.Context, cidr string) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM blocks WHERE cidr = $1`, cidr)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no block of %s", cidr)
		}
		return nil
	})
}

func (s *DB) Blocks(ctx context.Context) ([]sluis.Block, error) {
	rows, err := s.pool.Query(ctx, `SELECT cidr, reason, until, auto, created_at FROM blocks ORDER BY created_at, cidr`)
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
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO emergency (id, level, reason, previous, until, set_by, set_at) VALUES (1, $1, $2, $3, $4, $5, $6)
			ON CONFLICT (id) DO UPDATE SET level = excluded.level, reason = excluded.reason, previous = excluded.previous,
			until = excluded.until, set_by = excluded.set_by, set_at = excluded.set_at`,
			e.Level, e.Reason, e.Previous, unixNano(e.Until), e.SetBy, unixNano(e.SetAt))
		return err
	})
}

func (s *DB) Emergency(ctx context.Context) (sluis.Emergency, error) {
	var e sluis.Emergency
	var until, at int64
	err := s.pool.QueryRow(ctx, `SELECT level, reason, previous, until, set_by, set_at FROM emergency WHERE id = 1`).
		Scan(&e.Level, &e.Reason, &e.Previous, &until, &e.SetBy, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return sluis.Emergency{}, nil
	}
	e.Until, e.SetAt = fromNano(until), fromNano(at)
	return e, err
}

func (s *DB) RefreshMFA(ctx context.Context, id string, at time.Time, method string) error {
	return s.changeTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET mfa_at = $1, mfa_method = $2 WHERE id = $3 AND stage = $4 AND revoked_at = 0`, unixNano(at), method, id, sluis.StageComplete)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return sluis.Errorf(sluis.ENOTFOUND, "no live session %q", id)
		}
		return nil
	})
}

// dbNowNano is the database server's clock in Unix nanoseconds: leases
// go by it, so that nodes whose clocks differ agree on who holds one.
const dbNowNano = `(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint`

// UpdateCounter locks key's row (creating it first if need be: the
// upsert that returns the row also locks it), so that updates of one key
// from every node queue on it; five round trips in all, none waiting for
// a disk flush.
func (s *DB) UpdateCounter(ctx context.Context, key string, now time.Time, fn func(c *sluis.Counter) bool) (sluis.Counter, error) {
	var out sluis.Counter
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// A count lost in a crash of the database is worth less than a
		// disk flush on every guess: the commit does not wait for one
		// (it is still replicated, and durable within a fraction of a
		// second).
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return err
		}
		var n int
		var until, last, expires int64
		err := tx.QueryRow(ctx, `INSERT INTO counters (key, n, until_at, last_at, expires) VALUES ($1, 0, 0, 0, 0)
			ON CONFLICT (key) DO UPDATE SET n = counters.n RETURNING n, until_at, last_at, expires`, key).Scan(&n, &until, &last, &expires)
		if err != nil {
			return err
		}
		c := sluis.Counter{}
		if expires > unixNano(now) {
			c = sluis.Counter{N: n, Until: fromNano(until), Last: fromNano(last), Expires: fromNano(expires)}
		}
		out = c
		if !fn(&out) {
			// Rolled back: a row made only to be locked goes too.
			return errNoChange
		}
		c = out
		_, err = tx.Exec(ctx, `UPDATE counters SET n = $2, until_at = $3, last_at = $4, expires = $5 WHERE key = $1`,
			key, c.N, unixNano(c.Until), unixNano(c.Last), unixNano(c.Expires))
		return err
	})
	if err == errNoChange {
		err = nil
	}
	return out, err
}

// errNoChange rolls back a transaction that has nothing to store.
var errNoChange = errors.New("nothing to store")

func (s *DB) ReadCounter(ctx context.Context, key string, now time.Time) (sluis.Counter, error) {
	var n int
	var until, last, expires int64
	err := s.pool.QueryRow(ctx, `SELECT n, until_at, last_at, expires FROM counters WHERE key = $1 AND expires > $2`, key, unixNano(now)).
		Scan(&n, &until, &last, &expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return sluis.Counter{}, nil
	}
	if err != nil {
		return sluis.Counter{}, err
	}
	return sluis.Counter{N: n, Until: fromNano(until), Last: fromNano(last), Expires: fromNano(expires)}, nil
}

func (s *DB) DeleteCounter(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM counters WHERE key = $1`, key)
	return err
}

func (s *DB) PurgeCounters(ctx context.Context, now time.Time, max int) (int64, error) {
	var deleted int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM counters WHERE expires <= $1`, unixNano(now))
		if err != nil {
			return err
		}
		deleted = tag.RowsAffected()
		if _, err := tx.Exec(ctx, `DELETE FROM counter_shares WHERE expires <= $1`, unixNano(now)); err != nil {
			return err
		}
		tag, err = tx.Exec(ctx, `DELETE FROM counters WHERE key IN (SELECT key FROM counters ORDER BY until_at > $1 DESC, last_at DESC OFFSET $2)`,
			unixNano(now), max)
		deleted += tag.RowsAffected()
		return err
	})
	return deleted, err
}

// TryLease takes or renews the lease in one statement, by the database's
// clock: the upsert changes the row only where holder holds it already or
// it has run out, and returns it only then.
func (s *DB) TryLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	var got string
	err := s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, expires) VALUES ($1, $2, `+dbNowNano+` + $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires = excluded.expires
		WHERE leases.holder = excluded.holder OR leases.expires <= `+dbNowNano+`
		RETURNING holder`, name, holder, ttl.Nanoseconds()).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil && got == holder, err
}

func (s *DB) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
	return err
}

// AddShare queues changes of one key on a gate row in counters (the
// upsert that returns it locks it), then adds up the live shares.
func (s *DB) AddShare(ctx context.Context, key, holder string, delta, limit int, now, expires time.Time) (bool, error) {
	ok := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO off`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO counters (key, n, until_at, last_at, expires) VALUES ($1, 0, 0, 0, $2)
			ON CONFLICT (key) DO UPDATE SET expires = greatest(counters.expires, excluded.expires)`, "shares/"+key, unixNano(expires)); err != nil {
			return err
		}
		if delta > 0 {
			var sum int
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM counter_shares WHERE key = $1 AND expires > $2`, key, unixNano(now)).Scan(&sum); err != nil {
				return err
			}
			if sum+delta > limit {
				return nil
			}
		}
		ok = true
		_, err := tx.Exec(ctx, `INSERT INTO counter_shares (key, holder, n, expires) VALUES ($1, $2, greatest($3::integer, 0), $4)
			ON CONFLICT (key, holder) DO UPDATE SET n = greatest(counter_shares.n + $3, 0), expires = excluded.expires`,
			key, holder, delta, unixNano(expires))
		return err
	})
	return ok && err == nil, err
}

func (s *DB) RenewShares(ctx context.Context, holder string, expires time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM counter_shares WHERE holder = $1 AND n <= 0`, holder); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE counter_shares SET expires = $2 WHERE holder = $1`, holder, unixNano(expires))
		return err
	})
}
