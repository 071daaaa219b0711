package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Layer is one unpacked layer, shared by every image that has it.
type Layer struct {
	ChainID    string
	DiffID     string
	Parent     string
	BlobDigest string
	BlobSize   int64
	MediaType  string
	Size       int64
}

// Image is one image in the store.
type Image struct {
	ID                string // config digest
	ManifestDigest    string
	ManifestMediaType string
	Created           string
	Size              int64
	Architecture      string
	OS                string
	AddedAt           string
	// Parent is the ID of the image this one was made from, when docker
	// load or a commit recorded one; docker save writes it back.
	Parent      string
	Names       []string // repo:tag
	RepoDigests []string // repo@digest
	Layers      []Layer  // base first
}

// Container is one container's record.
type Container struct {
	ID       string
	Name     string
	ImageID  string
	ImageRef string
	State    string
	Created  string
	Config   string // JSON of the create options
	Run      Run
}

// Run is what the store knows of a container's latest run.
type Run struct {
	Pid        int
	MonitorPid int
	BootID     string
	StartedAt  string
	FinishedAt string
	ExitCode   int
}

var (
	// ErrNotFound: no record matches.
	ErrNotFound = errors.New("not found")
	// ErrNameInUse: a container name is taken.
	ErrNameInUse = errors.New("name already in use")
	// ErrInUse: an image is used by containers.
	ErrInUse = errors.New("image is in use")
	// ErrStateChanged: a container was not in the state a change expected
	// (it is gone, or another writer changed it first).
	ErrStateChanged = errors.New("the container's state changed meanwhile")
)

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

// HasLayer reports whether the layer is recorded and its directory exists.
func (s *Store) HasLayer(chainID string) (bool, error) {
	var n int
	if err := s.db.QueryRow(`SELECT COUNT(*) FROM layers WHERE chain_id = ?`, chainID).Scan(&n); err != nil {
		return false, dbErr(err)
	}
	if n == 0 {
		return false, nil
	}
	_, err := os.Stat(s.LayerDir(chainID))
	return err == nil, nil
}

// AddLayer records a layer whose directory is in place or, for a layer a
// commit stored only as a blob, is unpacked from it when first needed.
func (s *Store) AddLayer(l Layer) error {
	_, err := s.db.Exec(`INSERT OR IGNORE INTO layers (chain_id, diff_id, parent, blob_digest, blob_size, media_type, size) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		l.ChainID, l.DiffID, l.Parent, l.BlobDigest, l.BlobSize, l.MediaType, l.Size)
	return dbErr(err)
}

// AddImage records an image whose layers are recorded, and points names at
// it (a name that pointed elsewhere moves, as `docker pull` moves a tag).
func (s *Store) AddImage(img Image) error {
	tx, err := s.db.Begin()
	if err != nil {
		return dbErr(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT OR IGNORE INTO images (id, manifest_digest, manifest_media_type, created, size, architecture, os, added_at, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		img.ID, img.ManifestDigest, img.ManifestMediaType, img.Created, img.Size, img.Architecture, img.OS, now(), img.Parent); err != nil {
		return dbErr(err)
	}
	for i, l := range img.Layers {
		if _, err := tx.Exec(`INSERT OR IGNORE INTO image_layers (image_id, position, chain_id, blob_digest, blob_size, media_type) VALUES (?, ?, ?, ?, ?, ?)`,
			img.ID, i, l.ChainID, l.BlobDigest, l.BlobSize, l.MediaType); err != nil {
			return dbErr(err)
		}
	}
	for _, n := range img.Names {
		if _, err := tx.Exec(`INSERT INTO image_names (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id`, n, img.ID); err != nil {
			return dbErr(err)
		}
	}
	for _, rd := range img.RepoDigests {
		repo, digest, _ := strings.Cut(rd, "@")
		if _, err := tx.Exec(`INSERT OR REPLACE INTO image_digests (repository, digest, image_id) VALUES (?, ?, ?)`, repo, digest, img.ID); err != nil {
			return dbErr(err)
		}
	}
	return dbErr(tx.Commit())
}

const imageColumns = `id, manifest_digest, manifest_media_type, COALESCE(created, ''), size, architecture, os, added_at, parent`

func scanImage(row interface{ Scan(...any) error }) (Image, error) {
	var img Image
	err := row.Scan(&img.ID, &img.ManifestDigest, &img.ManifestMediaType, &img.Created, &img.Size, &img.Architecture, &img.OS, &img.AddedAt, &img.Parent)
	return img, err
}

// SetParent records parent as the image id was made from, as docker load
// does for an archive's image whose parent it loads too.
func (s *Store) SetParent(id, parent string) error {
	res, err := s.db.Exec(`UPDATE images SET parent = ? WHERE id = ?`, parent, id)
	if err != nil {
		return dbErr(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// Images lists every image, newest first, with names and layers, as one
// moment of the database.
func (s *Store) Images() ([]Image, error) {
	var out []Image
	err := s.snapshot(func(q querier) error {
		rows, err := q.QueryContext(context.Background(), `SELECT `+imageColumns+` FROM images ORDER BY added_at DESC`)
		if err != nil {
			return dbErr(err)
		}
		for rows.Next() {
			img, err := scanImage(rows)
			if err != nil {
				rows.Close()
				return dbErr(err)
			}
			out = append(out, img)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return dbErr(err)
		}
		for i := range out {
			if err := fillImage(q, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// querier is what reads the database: the pool, or one connection inside
// a snapshot.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// snapshot runs fn inside one read transaction, so that a record read in
// several queries (an image, its names, its layers) is one moment of the
// database even while other processes remove or add it.
func (s *Store) snapshot(fn func(q querier) error) error {
	ctx := context.Background()
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return dbErr(err)
	}
	defer conn.Close()
	// A deferred transaction takes no write lock; in WAL mode its first
	// read fixes the moment it sees.
	if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		return dbErr(err)
	}
	defer conn.ExecContext(ctx, `ROLLBACK`)
	return fn(conn)
}

func fillImage(q querier, img *Image) error {
	var err error
	if img.Names, err = queryStrings(q, `SELECT name FROM image_names WHERE image_id = ? ORDER BY name`, img.ID); err != nil {
		return err
	}
	if img.RepoDigests, err = queryStrings(q, `SELECT repository || '@' || digest FROM image_digests WHERE image_id = ? ORDER BY repository`, img.ID); err != nil {
		return err
	}
	// The image's own blob for a layer, where it recorded one.
	rows, err := q.QueryContext(context.Background(), `SELECT l.chain_id, l.diff_id, COALESCE(l.parent, ''),
		CASE il.blob_digest WHEN '' THEN l.blob_digest ELSE il.blob_digest END,
		CASE il.blob_digest WHEN '' THEN l.blob_size ELSE il.blob_size END,
		CASE il.blob_digest WHEN '' THEN l.media_type ELSE il.media_type END, l.size
		FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = ? ORDER BY il.position`, img.ID)
	if err != nil {
		return dbErr(err)
	}
	defer rows.Close()
	img.Layers = nil
	for rows.Next() {
		var l Layer
		if err := rows.Scan(&l.ChainID, &l.DiffID, &l.Parent, &l.BlobDigest, &l.BlobSize, &l.MediaType, &l.Size); err != nil {
			return dbErr(err)
		}
		img.Layers = append(img.Layers, l)
	}
	return dbErr(rows.Err())
}

func (s *Store) strings(query string, args ...any) ([]string, error) {
	return queryStrings(s.db, query, args...)
}

func queryStrings(q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(context.Background(), query, args...)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, dbErr(err)
		}
		out = append(out, v)
	}
	return out, dbErr(rows.Err())
}

// FindImage returns the image a name, a repo@digest, an ID or a unique ID
// prefix (at least 4 hex characters) names. candidates are tried in order:
// the caller passes the spellings of one reference it accepts.
func (s *Store) FindImage(candidates ...string) (Image, error) {
	for _, c := range candidates {
		var id string
		err := s.db.QueryRow(`SELECT image_id FROM image_names WHERE name = ?
			UNION SELECT image_id FROM image_digests WHERE repository || '@' || digest = ?
			UNION SELECT id FROM images WHERE id = ? OR id = 'sha256:' || ?`, c, c, c, c).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return Image{}, dbErr(err)
		}
		return s.imageByID(id)
	}
	for _, c := range candidates {
		hex := strings.TrimPrefix(c, "sha256:")
		if len(hex) < 4 || strings.Trim(hex, "0123456789abcdef") != "" {
			continue
		}
		ids, err := s.strings(`SELECT id FROM images WHERE id LIKE 'sha256:' || ? || '%'`, hex)
		if err != nil {
			return Image{}, err
		}
		if len(ids) == 1 {
			return s.imageByID(ids[0])
		}
		if len(ids) > 1 {
			return Image{}, fmt.Errorf("%w: %q matches %d images", ErrNotFound, c, len(ids))
		}
	}
	return Image{}, ErrNotFound
}

// imageByID reads an image and all it has as one moment: an image removed
// meanwhile is not found, never found with half its layers.
func (s *Store) imageByID(id string) (Image, error) {
	var img Image
	err := s.snapshot(func(q querier) error {
		var err error
		img, err = scanImage(q.QueryRowContext(context.Background(), `SELECT `+imageColumns+` FROM images WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return dbErr(err)
		}
		return fillImage(q, &img)
	})
	if err != nil {
		return Image{}, err
	}
	return img, nil
}

// RemoveImage deletes an image record (its names and layer references go
// with it). Unless force, an image a container uses is refused with ErrInUse.
// It returns whether the record went (forced removal of an image in use only
// drops its names, as docker does) and the layers no image uses any more.
// Their records and files, and the image's blobs, are left to Collect, which
// deletes them under the store-wide lock so that no pull recording the same
// layers at this moment loses them.
func (s *Store) RemoveImage(id string, force bool) (bool, []Layer, error) {
	tx, err := s.db.Begin()
	if err != nil {
		return false, nil, dbErr(err)
	}
	defer tx.Rollback()
	var users int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM containers WHERE image_id = ?`, id).Scan(&users); err != nil {
		return false, nil, dbErr(err)
	}
	if users > 0 {
		if !force {
			return false, nil, fmt.Errorf("%w by %d container(s)", ErrInUse, users)
		}
		// Forced: keep the record so the containers still resolve, drop its names.
		if _, err := tx.Exec(`DELETE FROM image_names WHERE image_id = ?`, id); err != nil {
			return false, nil, dbErr(err)
		}
		return false, nil, dbErr(tx.Commit())
	}
	if _, err := tx.Exec(`DELETE FROM images WHERE id = ?`, id); err != nil {
		return false, nil, dbErr(err)
	}
	rows, err := tx.Query(`SELECT chain_id, blob_digest FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)`)
	if err != nil {
		return false, nil, dbErr(err)
	}
	var unused []Layer
	for rows.Next() {
		var l Layer
		if err := rows.Scan(&l.ChainID, &l.BlobDigest); err != nil {
			rows.Close()
			return false, nil, dbErr(err)
		}
		unused = append(unused, l)
	}
	rows.Close()
	return true, unused, dbErr(tx.Commit())
}

// TagImage points name at an image (moving it from any other image).
func (s *Store) TagImage(id, name string) error {
	_, err := s.db.Exec(`INSERT INTO image_names (name, image_id) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id`, name, id)
	return dbErr(err)
}

// Untag drops names of an image: each a repo:tag or a repo@digest. The
// image record stays, even with no name left.
func (s *Store) Untag(id string, names []string) error {
	tx, err := s.db.Begin()
	if err != nil {
		return dbErr(err)
	}
	defer tx.Rollback()
	for _, n := range names {
		if _, err := tx.Exec(`DELETE FROM image_names WHERE image_id = ? AND name = ?`, id, n); err != nil {
			return dbErr(err)
		}
		if _, err := tx.Exec(`DELETE FROM image_digests WHERE image_id = ? AND repository || '@' || digest = ?`, id, n); err != nil {
			return dbErr(err)
		}
	}
	return dbErr(tx.Commit())
}

// CreateContainer records a new container, whose bundle is complete: a
// record never names a missing bundle.
func (s *Store) CreateContainer(c Container) error {
	_, err := s.db.Exec(`INSERT INTO containers (id, name, image_id, image_ref, state, created, config) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.Name, c.ImageID, c.ImageRef, c.State, c.Created, c.Config)
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed: containers.name") {
		return fmt.Errorf("%w: %s", ErrNameInUse, c.Name)
	}
	if err != nil && strings.Contains(err.Error(), "FOREIGN KEY constraint failed") {
		// Another process removed the image since the caller found it.
		return fmt.Errorf("%w: image %s was removed", ErrNotFound, c.ImageID)
	}
	return dbErr(err)
}

const containerColumns = `id, name, image_id, image_ref, state, created, config, pid, monitor_pid, boot_id, started_at, finished_at, exit_code`

func (s *Store) queryContainers(where string, args ...any) ([]Container, error) {
	rows, err := s.db.Query(`SELECT `+containerColumns+` FROM containers `+where+` ORDER BY created DESC`, args...)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := []Container{}
	for rows.Next() {
		var c Container
		if err := rows.Scan(&c.ID, &c.Name, &c.ImageID, &c.ImageRef, &c.State, &c.Created, &c.Config,
			&c.Run.Pid, &c.Run.MonitorPid, &c.Run.BootID, &c.Run.StartedAt, &c.Run.FinishedAt, &c.Run.ExitCode); err != nil {
			return nil, dbErr(err)
		}
		out = append(out, c)
	}
	return out, dbErr(rows.Err())
}

// Container returns the container with this full ID, or ErrNotFound.
func (s *Store) Container(id string) (Container, error) {
	found, err := s.queryContainers(`WHERE id = ?`, id)
	if err != nil {
		return Container{}, err
	}
	if len(found) == 0 {
		return Container{}, fmt.Errorf("%w: container %s", ErrNotFound, id)
	}
	return found[0], nil
}

// Containers lists every container, newest first.
func (s *Store) Containers() ([]Container, error) { return s.queryContainers("") }

// FindContainers returns the containers idOrName names, trying in order: the
// full ID, the exact name, an ID prefix, then (with partialNames) names
// containing it. The first rule that matches anything decides; more than
// one result is ambiguous.
func (s *Store) FindContainers(idOrName string, partialNames bool) ([]Container, error) {
	escaped := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(idOrName)
	rules := []struct {
		where string
		arg   string
	}{
		{`WHERE id = ?`, idOrName},
		{`WHERE name = ?`, idOrName},
		{`WHERE id LIKE ? ESCAPE '\'`, escaped + "%"},
		{`WHERE name LIKE ? ESCAPE '\'`, "%" + escaped + "%"},
	}
	if !partialNames {
		rules = rules[:3]
	}
	for _, r := range rules {
		found, err := s.queryContainers(r.where, r.arg)
		if err != nil || len(found) > 0 {
			return found, err
		}
	}
	return []Container{}, nil
}

// SetRunning records that a container runs; only a container recorded as
// created or exited starts, else ErrStateChanged.
func (s *Store) SetRunning(id string, run Run) error {
	return s.transition(`UPDATE containers SET state = 'running', pid = ?, monitor_pid = ?, boot_id = ?, started_at = ?, finished_at = '', exit_code = 0
		WHERE id = ? AND state IN ('created', 'exited')`, run.Pid, run.MonitorPid, run.BootID, run.StartedAt, id)
}

// SetExited records that the run watched by monitorPid ended; only that
// run, still recorded as alive, changes, else ErrStateChanged. A reader
// holding an older record so never ends a newer run.
func (s *Store) SetExited(id string, monitorPid, exitCode int, finishedAt string) error {
	return s.transition(`UPDATE containers SET state = 'exited', exit_code = ?, finished_at = ?, pid = 0
		WHERE id = ? AND state IN ('running', 'paused') AND monitor_pid = ?`, exitCode, finishedAt, id, monitorPid)
}

// SetPaused moves a live container between running and paused; a container
// not in the state it moves from is ErrStateChanged.
func (s *Store) SetPaused(id string, paused bool) error {
	from, to := "running", "paused"
	if !paused {
		from, to = to, from
	}
	return s.transition(`UPDATE containers SET state = ? WHERE id = ? AND state = ?`, to, id, from)
}

// DeleteContainer removes the record of a container that has no process
// (created or exited); any other is ErrStateChanged. The record goes
// before its bundle: a bundle no record names is the collector's.
func (s *Store) DeleteContainer(id string) error {
	return s.transition(`DELETE FROM containers WHERE id = ? AND state IN ('created', 'exited')`, id)
}

// transition runs one conditional change of a container's state: the
// condition and the change are one statement, so no other writer comes
// between them, and no row changed means the state was not the one expected.
func (s *Store) transition(query string, args ...any) error {
	res, err := s.db.Exec(query, args...)
	if err != nil {
		return dbErr(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return dbErr(err)
	}
	if n == 0 {
		return ErrStateChanged
	}
	return nil
}
