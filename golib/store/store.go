// Package store owns k3-core's state directory: the SQLite database that
// records images and containers, content-addressed blobs, layers unpacked
// once and shared by every image and container that uses them, and one
// bundle directory per container.
//
// Several processes may use one root at once: the database serialises
// metadata (WAL, busy timeout), and every file appears by rename from a
// staging directory on the same file system, so no reader ever sees half of
// a blob, a layer or a bundle. Content is deleted only by the store's
// garbage collection (gc.go), under a store-wide lock that every writer
// holds shared. Files appear before the records that name them, and
// records go before their files, so a process killed at any moment leaves
// at worst files no record names; opening a store collects them.
//
//	<root>/k3.db                   metadata
//	<root>/blobs/sha256/<hex>      manifests, configs, compressed layers
//	<root>/layers/<chain hex>/     one unpacked layer (its own diff only)
//	<root>/containers/<id>/        bundle: config.json, diff/ (writable layer)
//	<root>/locks/<id>              the container's lock (package lifecycle)
//	<root>/tmp/                    staging, same file system as the rest
//	<root>/gc.lock                 the store-wide lock (flock)
package store

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Store is an open state directory. It is safe for concurrent use.
type Store struct {
	root  string
	db    *sql.DB
	holds atomic.Int64 // this process's holds on the store-wide lock
}

// ErrDatabase wraps every failure to read or write the metadata database,
// so callers can tell a broken database from a missing record.
var ErrDatabase = errors.New("metadata database failure")

func dbErr(err error) error {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrDatabase, err)
}

// Open opens (creating if needed) the store at root and brings its schema
// up to date.
func Open(root string) (*Store, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("store root %q is not an absolute path", root)
	}
	for _, d := range []string{"blobs/sha256", "layers", "containers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, err
		}
	}
	dsn := "file:" + filepath.Join(root, "k3.db") + "?_journal_mode=WAL&_busy_timeout=15000&_foreign_keys=on&_txlock=immediate&_synchronous=NORMAL"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, dbErr(err)
	}
	s := &Store{root: root, db: db}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, err
	}
	// Repair what a killed process left: staging, and files or records
	// without their counterpart. Put off while others work on the store;
	// what it cannot delete now (a file system gone read-only) the next
	// collection tries again, so it does not keep the store from opening.
	s.Collect()
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Root is the state directory.
func (s *Store) Root() string { return s.root }

// BlobPath is where a blob with digest "sha256:<hex>" lives.
func (s *Store) BlobPath(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return filepath.Join(s.root, "blobs", algo, hex)
}

// LayerDir is where the layer with chain ID "sha256:<hex>" is unpacked.
func (s *Store) LayerDir(chainID string) string {
	_, hex, _ := strings.Cut(chainID, ":")
	return filepath.Join(s.root, "layers", hex)
}

// BundleDir is the bundle directory of a container.
func (s *Store) BundleDir(id string) string { return filepath.Join(s.root, "containers", id) }

// ContainerLockPath is the file package lifecycle locks for a container. It
// lives apart from the bundle, so a container whose bundle is not made yet,
// or is gone, can still be locked.
func (s *Store) ContainerLockPath(id string) string { return filepath.Join(s.root, "locks", id) }

// PutBlob stores small content (a config, a manifest) under its digest; the
// file appears by rename, and content already there is kept. The caller
// holds the store (Hold) until a record names the blob.
func (s *Store) PutBlob(digest string, data []byte) error {
	if _, err := os.Stat(s.BlobPath(digest)); err == nil {
		return nil
	}
	f, err := s.TempFile("blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return s.PlaceBlob(digest, f.Name())
}

// PlaceBlob moves a complete, verified staged file into place as the blob
// digest. The caller holds the store until a record names the blob.
func (s *Store) PlaceBlob(digest, staged string) error {
	return os.Rename(staged, s.BlobPath(digest))
}

// PlaceLayer moves a complete layer directory, whose blob digest and diff
// ID were both checked, into place and then records it: the directory
// first, so a record never names a missing one. A directory another
// process placed first is as good, and kept.
func (s *Store) PlaceLayer(l Layer, staged string) error {
	err := os.Rename(staged, s.LayerDir(l.ChainID))
	if err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return err
	}
	return s.AddLayer(l)
}

// TempDir makes a staging directory on the store's file system. Staging is
// garbage whenever the collector runs, so the caller must hold the store.
func (s *Store) TempDir(pattern string) (string, error) {
	if s.holds.Load() == 0 {
		return "", errNoHold
	}
	return os.MkdirTemp(filepath.Join(s.root, "tmp"), pattern)
}

// TempFile makes a staging file, as TempDir a directory.
func (s *Store) TempFile(pattern string) (*os.File, error) {
	if s.holds.Load() == 0 {
		return nil, errNoHold
	}
	return os.CreateTemp(filepath.Join(s.root, "tmp"), pattern)
}

// migrations are applied in order; PRAGMA user_version records how many ran.
// Never edit one that has shipped: add another.
var migrations = []string{
	`CREATE TABLE images (
		id                  TEXT PRIMARY KEY,   -- config digest
		manifest_digest     TEXT NOT NULL,
		manifest_media_type TEXT NOT NULL,
		created             TEXT,
		size                INTEGER NOT NULL,   -- compressed layer bytes
		architecture        TEXT NOT NULL,
		os                  TEXT NOT NULL,
		added_at            TEXT NOT NULL
	);
	CREATE TABLE image_names (
		name     TEXT PRIMARY KEY,              -- normalised repo:tag
		image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
	);
	CREATE TABLE image_digests (
		repository TEXT NOT NULL,               -- normalised repo
		digest     TEXT NOT NULL,               -- manifest digest it was pulled by
		image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
		PRIMARY KEY (repository, digest)
	);
	CREATE TABLE layers (
		chain_id    TEXT PRIMARY KEY,
		diff_id     TEXT NOT NULL,
		parent      TEXT,
		blob_digest TEXT NOT NULL,
		blob_size   INTEGER NOT NULL,
		media_type  TEXT NOT NULL,
		size        INTEGER NOT NULL            -- unpacked content bytes
	);
	CREATE TABLE image_layers (
		image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
		position INTEGER NOT NULL,
		chain_id TEXT NOT NULL REFERENCES layers(chain_id),
		PRIMARY KEY (image_id, position)
	);
	CREATE TABLE containers (
		id        TEXT PRIMARY KEY,
		name      TEXT NOT NULL UNIQUE,
		image_id  TEXT NOT NULL REFERENCES images(id),
		image_ref TEXT NOT NULL,
		state     TEXT NOT NULL,
		created   TEXT NOT NULL,
		config    TEXT NOT NULL                 -- JSON of the create options
	);`,
	// 2: running containers.
	`ALTER TABLE containers ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE containers ADD COLUMN monitor_pid INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE containers ADD COLUMN boot_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE containers ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE containers ADD COLUMN finished_at TEXT NOT NULL DEFAULT '';
	ALTER TABLE containers ADD COLUMN exit_code INTEGER NOT NULL DEFAULT 0;`,
	// 3: an image's parent, as docker load and docker commit record it.
	`ALTER TABLE images ADD COLUMN parent TEXT NOT NULL DEFAULT '';`,
	// 4: the blob each image's manifest names for a layer. One unpacked
	// layer may come from several blobs (gzip from a registry, plain tar
	// from a docker save archive); '' for images recorded before.
	`ALTER TABLE image_layers ADD COLUMN blob_digest TEXT NOT NULL DEFAULT '';
	ALTER TABLE image_layers ADD COLUMN blob_size INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE image_layers ADD COLUMN media_type TEXT NOT NULL DEFAULT '';`,
}

func (s *Store) migrate() error {
	tx, err := s.db.Begin()
	if err != nil {
		return dbErr(err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRow(`PRAGMA user_version`).Scan(&version); err != nil {
		return dbErr(err)
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: schema version %d is newer than this k3-core knows (%d)", ErrDatabase, version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		if _, err := tx.Exec(migrations[i]); err != nil {
			return dbErr(fmt.Errorf("migration %d: %w", i+1, err))
		}
	}
	if _, err := tx.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return dbErr(err)
	}
	return dbErr(tx.Commit())
}
