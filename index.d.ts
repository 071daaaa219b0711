// Type definitions for k3-core.

declare namespace K3Core {
  interface Logger {
    debug?(message: string, fields?: object): void;
    info?(message: string, fields?: object): void;
    warn?(message: string, fields?: object): void;
    error?(message: string, fields?: object): void;
  }

  interface Options {
    /** OCI runtime to run containers with: a path or a command on PATH (default runc, else crun). */
    runtime?: string;
    /** The store's directory; default $K3_ROOT, else $XDG_DATA_HOME/k3-core (~/.local/share/k3-core). */
    root?: string;
    /** Console-like logger for each operation; silent when absent. */
    logger?: Logger;
  }

  type Transport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive' | 'k3';

  type Credentials = { username: string; password: string } | { registryToken: string };

  interface InspectPostData {
    /** The image name; must agree with the first argument. For oci, oci-archive and docker-archive: the path. */
    imageName: string;
    /** Tag (default `latest`) or digest `sha256:...`; for local transports, the image's ref name or `repo:tag`. */
    imageTag?: string;
    /** skopeo's transport names; default `docker` (a registry). */
    containerImageTransport?: Transport;
    /** Otherwise the user's Docker/Podman auth files and credential helpers are used. */
    credentials?: Credentials;
    /** Platform to pick from a multi-arch index; defaults to the host's. */
    os?: string;
    architecture?: string;
    variant?: string;
    /** Default true; loopback registries may be plain HTTP regardless. */
    tlsVerify?: boolean;
    /** Default false (RepoTags: []); true fills RepoTags from the registry's tag list. */
    listTags?: boolean;
    /** Milliseconds for the whole call; past it, RegistryConnectionFailure with `connection timeout`. */
    timeout?: number;
    /** Cancels the call; it then rejects with AbortError. */
    signal?: AbortSignal;
  }

  interface LayerData {
    MIMEType: string;
    Digest: string;
    /** -1 when unknown (schema 1 manifests). */
    Size: number;
    Annotations: Record<string, string> | null;
  }

  /** The fields of `skopeo inspect`, plus PlatformDigest. */
  interface InspectResult {
    Name?: string;
    /** Digest of the top-level manifest (the index, for a multi-arch image). */
    Digest: string;
    /** Digest of the chosen platform's manifest. */
    PlatformDigest: string;
    RepoTags: string[];
    Created: string | null;
    DockerVersion: string;
    Labels: Record<string, string> | null;
    Architecture: string;
    Variant?: string;
    Os: string;
    Layers: string[];
    LayersData: LayerData[];
    Env: string[] | null;
  }

  interface Cancellable {
    signal?: AbortSignal;
  }

  /** A change to a container or an image, as `docker events` reports it. */
  interface Event {
    Type: 'container' | 'image';
    /** container: create, start, pause, unpause, kill, die, stop, restart, commit, destroy; image: pull, tag, untag, delete, push, import. */
    Action: string;
    Actor: {
      /** The container's ID, or the image's ID (its config digest). */
      ID: string;
      /** name and image; a die adds exitCode, a kill signal (as strings). */
      Attributes: Record<string, string>;
    };
    /** Unix seconds. */
    time: number;
    /** Unix nanoseconds (beyond Number's exact range: compare, do not do sums). */
    timeNano: number;
  }

  type EventFilter = string | string[];

  interface EventsOptions extends Cancellable {
    /** Each key given must match; a list matches any of its values. container: ID, ID prefix or name; image: ID or name. */
    filters?: { type?: EventFilter; event?: EventFilter; container?: EventFilter; image?: EventFilter };
    /** Replay from here (ISO time or Unix seconds); default now. */
    since?: string | number;
    /** End the stream once this time has passed (ISO time or Unix seconds); default never. */
    until?: string | number;
  }

  interface PullProgress {
    phase: 'resolved' | 'exists' | 'download' | 'unpack' | 'done';
    layer?: string;
    index: number;
    count: number;
    current: number;
    total: number;
  }

  /** How to reach a registry, and which platform of a multi-platform image. */
  interface RegistryOptions extends Cancellable {
    credentials?: Credentials;
    tlsVerify?: boolean;
    os?: string;
    architecture?: string;
    variant?: string;
    timeout?: number;
  }

  interface PullOptions extends RegistryOptions {
    containerImageTransport?: Transport;
    onProgress?: (event: PullProgress) => void;
  }

  interface PullResult {
    Id: string;
    Digest: string;
    RepoTags: string[];
    RepoDigests: string[];
    Architecture: string;
    Os: string;
    Size: number;
    Layers: number;
    LayersPulled: number;
    LayersReused: number;
  }

  interface ImageSummary {
    Id: string;
    RepoTags: string[];
    RepoDigests: string[];
    Created: string;
    Size: number;
    Architecture: string;
    Os: string;
    Layers: number;
  }

  interface SaveProgress {
    /** 'layers' while layers are fetched and inflated (compressed bytes), 'write' while the archive is written. */
    phase: 'layers' | 'write';
    current: number;
    total: number;
  }

  interface SaveImageOptions extends RegistryOptions {
    /** docker-archive (default): what `docker save` writes; oci-archive: an OCI layout in a tar. */
    format?: 'docker-archive' | 'oci-archive';
    /** Which Docker's `docker save` to match byte for byte: '20.10', '23' (default), '24', or '25' and later (OCI-based layout). */
    dockerVersion?: string;
    /** 'store' (default): images of the local store, as docker save; 'registry': straight from the registry, nothing stored. */
    source?: 'store' | 'registry';
    /** fsync the archive and its directory before it gets its name (a device or FIFO target: only a block device is synced). */
    durable?: boolean;
    /** For a Writable target only (a file's name says its compression): default 'none'. */
    compression?: StreamCompression;
    onProgress?: (event: SaveProgress) => void;
  }

  /** How an output written into a Writable is compressed. */
  type StreamCompression = 'gzip' | 'zstd' | 'none';

  interface SaveImageResult {
    Path: string;
    Format: 'docker-archive' | 'oci-archive';
    Images: Array<{ Id: string; RepoTags: string[] }>;
  }

  interface CopyImageOptions extends PullOptions {
    /** The ref name in the layout; default the tag. */
    destinationTag?: string;
  }

  interface PushOptions extends Cancellable {
    credentials?: Credentials;
    tlsVerify?: boolean;
    timeout?: number;
    onProgress?: (event: PushProgress) => void;
  }

  interface PushProgress {
    /** 'upload' while blobs are sent (the first bytes at once, then about ten a second), 'done' once the manifest is in place. */
    phase: 'upload' | 'done';
    /** Bytes sent so far: the blobs, then the manifest. */
    current: number;
    /** Bytes to send; grows as each upload (and at last the manifest) starts. */
    total: number;
  }

  interface ImportProgress {
    phase: 'import' | 'done';
    /** Bytes of the source read so far (compressed, as given). */
    current: number;
    /** The source file's size; 0 for a stream. */
    total: number;
  }

  interface ImportImageOptions extends Cancellable {
    repository?: string;
    tag?: string;
    /** The history comment; default "Imported from <source>" ("-" for a stream). */
    message?: string;
    /** Dockerfile-style, as commitContainer's: ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE. */
    changes?: string[];
    /** os/architecture[/variant]; default the host's. */
    platform?: string;
    onProgress?: (event: ImportProgress) => void;
  }

  interface ImageCore {
    inspectAnImage(imageName: string, postData: InspectPostData): Promise<InspectResult>;
    pullAnImage(imageName: string, tag?: string, options?: PullOptions): Promise<PullResult>;
    pullAnImage(imageName: string, options?: PullOptions): Promise<PullResult>;
    listImages(): Promise<ImageSummary[]>;
    /**
     * Writes the images as one archive at `filePath`, replaced atomically. An
     * existing character/block device or FIFO is written into instead, as
     * `docker save -o` and GNU tar do. A socket, or a path on /proc, /sys or
     * another special file system, is refused: InvalidSaveImageParameters (422).
     * A Writable is written into with backpressure, compressed as
     * `options.compression` says; the result's Path is then '-'. On failure
     * or abort the Writable is destroyed with the K3Error the call rejects with.
     */
    saveImage(images: string | string[], filePath: string | NodeJS.WritableStream, options?: SaveImageOptions): Promise<SaveImageResult>;
    /** Loads an archive file, or a Readable (an HTTP response, say) checked as a file is. */
    loadImage(filePath: string | NodeJS.ReadableStream | import('node:stream/web').ReadableStream<Uint8Array>, options?: Cancellable & { onProgress?: (event: PullProgress) => void }): Promise<{ Loaded: Array<{ Id: string; RepoTags: string[] }> }>;
    /**
     * As `docker import`: a one-layer image of a filesystem tar, a file
     * (plain, .gz, .zst, .bz2, .xz) or a Readable, stored and unpacked as it
     * streams in, contained as a pulled layer is.
     */
    importImage(source: string | NodeJS.ReadableStream | import('node:stream/web').ReadableStream<Uint8Array>, options?: ImportImageOptions): Promise<{ Id: string; Digest: string; RepoTags: string[] }>;
    tagImage(image: string, newName: string): Promise<{ Id: string; Tagged: string }>;
    pushAnImage(image: string, destination?: string, options?: PushOptions): Promise<{ Digest: string; Destination: string }>;
    pushAnImage(image: string, options?: PushOptions): Promise<{ Digest: string; Destination: string }>;
    removeImage(image: string, options?: { force?: boolean }): Promise<{ Untagged: string[]; Deleted: string[] }>;
    copyImage(imageName: string, tag: string, layoutDir: string, options?: CopyImageOptions): Promise<{ Digest: string; Destination: string; Tag: string }>;
  }

  type ContainerState = 'created' | 'running' | 'paused' | 'exited';

  interface CreateContainerOptions {
    name?: string;
    cmd?: string[];
    entrypoint?: string[];
    env?: string[];
    workingDir?: string;
    user?: string;
    labels?: Record<string, string>;
    hostname?: string;
    network?: 'none' | 'host';
    mounts?: Array<{ source: string; destination: string; readOnly?: boolean }>;
    /** Capabilities added to docker's 14 defaults: 'NET_ADMIN', 'CAP_NET_ADMIN' or 'ALL'. */
    capAdd?: string[];
    /** Capabilities taken from docker's defaults; 'ALL' leaves only capAdd's. */
    capDrop?: string[];
    /** Every capability, no seccomp filter, no masked or read-only paths, a writable /sys. */
    privileged?: boolean;
    /**
     * docker's --security-opt: 'seccomp=unconfined', 'seccomp=builtin',
     * 'seccomp=<absolute path of a profile>' or 'seccomp=<profile JSON>',
     * 'no-new-privileges[=true|false]', 'systempaths=unconfined'.
     */
    securityOpt?: string[];
  }

  interface ContainerSummary {
    Id: string;
    Name: string;
    Image: string;
    ImageID: string;
    ImageDigest: string;
    State: ContainerState;
    Created: string;
    Command: string[];
    Labels: Record<string, string>;
    ExitCode: number;
    StartedAt: string;
    FinishedAt: string;
    Pid: number;
  }

  interface ContainerDetails extends ContainerSummary {
    Config: CreateContainerOptions;
    BundleDir: string;
    Layers: string[];
  }

  interface ExportProgress {
    phase: 'export' | 'done';
    current: number;
    total: number;
    entries: number;
  }

  /** One changed path, as `docker diff`: Kind 0 modified, 1 added, 2 deleted. */
  interface ContainerChange {
    Path: string;
    Kind: 0 | 1 | 2;
  }

  interface ExecOptions extends Cancellable {
    /** 'NAME=value' entries added to the container's environment (replacing a name it has). */
    env?: string[];
    /** 'name', 'uid', 'name:group' or 'uid:gid', looked up in the container; default the container's user. */
    user?: string;
    /** An absolute path in the container; default the container's working directory. */
    workingDir?: string;
    /** Fed to the command's standard input, then closed; without it the input is empty. Not with tty. */
    stdin?: string | Uint8Array;
    /** Run on a pseudo-terminal (as docker exec -t), handed to onTerminal; stdout and stderr then come back empty. */
    tty?: boolean;
    /** Required with tty: called once with the terminal, as soon as the exec begins. */
    onTerminal?: (terminal: ExecTerminal) => void;
  }

  /** What the command's terminal shows (read) and what is typed into it (write); it ends when the command has ended. */
  type ExecTerminal = import('node:stream').Duplex & {
    /** Sets the terminal's size, as a terminal emulator does when its window changes (the command gets SIGWINCH). */
    resize(cols: number, rows: number): void;
  };

  interface ExecResult {
    ExitCode: number;
    stdout: string;
    stderr: string;
  }

  interface StatsOptions extends Cancellable {
    /** An async iterable of samples instead of a Promise of one. */
    stream?: boolean;
    /** Milliseconds between samples (default 1000); once, the time CPUPerc covers. */
    interval?: number;
  }

  interface StatsCPU {
    /** Nanoseconds of CPU time the container's processes have used. */
    cpu_usage: { total_usage: number };
    /** Nanoseconds of CPU time the whole host has counted, all CPUs. */
    system_cpu_usage: number;
    online_cpus: number;
  }

  /** One reading of a container's cgroups, as docker's stats, with the figures `docker stats` shows. */
  interface ContainerStats {
    /** When it was read, RFC 3339. */
    read: string;
    id: string;
    /** '/' and the container's name, as docker. */
    name: string;
    cpu_stats: StatsCPU;
    /** The reading before (all zero for a stream's first sample). */
    precpu_stats: StatsCPU;
    memory_stats: {
      /** Bytes charged to the container, page cache included. */
      usage: number;
      /** Bytes; the host's memory when there is no lower limit. */
      limit: number;
      /** The cgroup's memory.stat. */
      stats: Record<string, number>;
    };
    /** limit is absent when there is none. */
    pids_stats: { current: number; limit?: number };
    /** Percent of one CPU over the time since precpu_stats (0 for a stream's first sample). */
    CPUPerc: number;
    /** Bytes, without inactive page cache, as docker stats. */
    MemUsage: number;
    MemLimit: number;
    MemPerc: number;
    PIDs: number;
  }

  interface LogsOptions {
    /** Only the last `tail` entries (those written by the time of the call, when followed). */
    tail?: number;
    /** Only entries written at or after this ISO 8601 time or epoch seconds. */
    since?: string | number;
    stdout?: boolean;
    stderr?: boolean;
  }

  interface LogEntry {
    stream: 'stdout' | 'stderr';
    time: string;
    log: string;
  }

  interface ContainerCore {
    createContainer(image: string, options?: CreateContainerOptions): Promise<ContainerSummary>;
    listContainers(filters?: { state?: ContainerState; name?: string; image?: string }): Promise<ContainerSummary[]>;
    inspectContainer(containerId: string): Promise<ContainerDetails>;
    removeContainer(containerId: string, options?: { force?: boolean }): Promise<{ Id: string; Name: string; Removed: boolean }>;
    copyToContainer(containerId: string, hostPath: string, containerPath: string, options?: { signal?: AbortSignal }): Promise<{ Id: string; Path: string }>;
    removeFromContainer(containerId: string, containerPath: string): Promise<{ Id: string; Path: string }>;
    /** An aborted start settles once no process or mount of it is left. */
    startContainer(containerId: string, options?: { signal?: AbortSignal }): Promise<ContainerSummary>;
    pauseContainer(containerId: string): Promise<ContainerSummary>;
    unpauseContainer(containerId: string): Promise<ContainerSummary>;
    stopContainer(containerId: string, options?: { timeout?: number }): Promise<ContainerSummary>;
    killContainer(containerId: string, signal?: string): Promise<{ Id: string; Signal: string }>;
    waitContainer(containerId: string, options?: Cancellable): Promise<{ Id: string; ExitCode: number; FinishedAt: string }>;
    restartContainer(containerId: string, options?: { timeout?: number }): Promise<ContainerSummary>;
    /**
     * What the container wrote, oldest first. A line longer than 16 KiB comes
     * as several entries of at most 16 KiB each (docker's json-file driver
     * splits lines the same way).
     */
    containerLogs(containerId: string, options?: LogsOptions & { follow?: false }): Promise<LogEntry[]>;
    /**
     * Followed: a Readable in object mode, also an async iterable, of the
     * entries as they are written. It ends once the container has exited (at
     * once for one not started) and its last entries are delivered; an abort
     * of `signal` destroys it with an AbortError. A slow reader slows the
     * engine down: nothing piles up.
     */
    containerLogs(containerId: string, options: LogsOptions & { follow: true; signal?: AbortSignal }): import('node:stream').Readable & AsyncIterable<LogEntry>;
    /**
     * Runs `cmd` in a running container through the OCI runtime's `exec`, as
     * `docker exec` does: with the container's capabilities, AppArmor
     * profile, no-new-privileges, environment, user and working directory,
     * changed by the options. Resolves once the command has ended, with its
     * exit code and its output decoded as UTF-8; a command that fails still
     * resolves (ExitCode is not 0). An abort kills the command.
     */
    execContainer(containerId: string, cmd: string[], options?: ExecOptions): Promise<ExecResult>;
    /**
     * CPU, memory and tasks of a running or paused container, from its
     * cgroups. Once: two readings `interval` ms apart, the second with the
     * first as precpu_stats. With stream: a reading at once, then one every
     * `interval` ms, ending when the container stops or the signal aborts.
     */
    containerStats(containerId: string, options?: StatsOptions & { stream?: false }): Promise<ContainerStats>;
    containerStats(containerId: string, options: StatsOptions & { stream: true }): AsyncIterableIterator<ContainerStats>;
    commitContainer(containerId: string, options?: {
      repository?: string;
      tag?: string;
      message?: string;
      author?: string;
      /** Dockerfile-style: ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE. */
      changes?: string[];
      pause?: boolean;
    }): Promise<{ Id: string; Digest: string; RepoTags: string[] }>;
    /** As `docker diff`, in its order; only reads the store. */
    containerChanges(containerId: string): Promise<ContainerChange[]>;
    /**
     * Resolves "<name> has exported successfully to <filePath>". A file (or a
     * symlink, itself) at `filePath` is replaced atomically; an existing
     * character/block device or FIFO is written into instead, as `docker
     * export -o` and GNU tar do, with no free-space check. A socket, or a path
     * on /proc, /sys or another special file system, is refused:
     * InvalidExportContainerParameters (422). A Writable is written into
     * with backpressure, compressed as `options.compression` says, and the
     * message names it "-"; on failure or abort it is destroyed with the
     * K3Error the call rejects with.
     */
    exportContainer(containerId: string, filePath: string | NodeJS.WritableStream, options?: Cancellable & {
      onProgress?: (event: ExportProgress) => void;
      /** Also put the file on disk (fsync) before it gets its name, so it survives a power loss (a device or FIFO target: only a block device is synced). */
      durable?: boolean;
      /** For a Writable target only (a file's name says its compression): default 'none'. */
      compression?: StreamCompression;
    }): Promise<string>;
  }

  type ErrorType =
    | 'VALIDATION_ERROR' | 'NOT_FOUND' | 'DB_ERROR' | 'NETWORK_ERROR' | 'FILE_SYSTEM_ERROR'
    | 'CONTAINER_SERVICE_ERROR' | 'IMAGE_SERVICE_ERROR' | 'GENERIC_ERROR' | 'ABORTED';

  interface ErrorDetails {
    type: ErrorType;
    statusCode: number;
    /** The specific low-level reason in plain words. */
    error: string;
    [input: string]: unknown;
  }

  class K3Error extends Error {
    readonly statusCode: number;
    readonly type: ErrorType;
    readonly details: ErrorDetails;
    readonly cause?: Error & { code?: string };
    /** Name, code, message, every detail and how to fix it. */
    createFullMessage(): string;
  }

  interface Errors {
    K3Error: typeof K3Error;
    AbortError: typeof K3Error;
    GenericFailure: typeof K3Error;
    InvalidInspectParameters: typeof K3Error;
    ImageNotFoundInRegistry: typeof K3Error;
    RegistryAuthenticationFailure: typeof K3Error;
    RegistryConnectionFailure: typeof K3Error;
    InspectImageFailure: typeof K3Error;
    InvalidEventsParameters: typeof K3Error;
    InvalidExportContainerParameters: typeof K3Error;
    ResolveContainerName: typeof K3Error;
    ContainerNotFound: typeof K3Error;
    FetchContainerInfoFailure: typeof K3Error;
    ExportContainerPermissionDenied: typeof K3Error;
    InsufficientDiskSpaceForExport: typeof K3Error;
    ReadOnlyFileSystem: typeof K3Error;
    ContainerBundleNotFound: typeof K3Error;
    ExportContainerIOFailure: typeof K3Error;
    ExportContainerFailure: typeof K3Error;
    InvalidPullParameters: typeof K3Error;
    LayerVerificationFailure: typeof K3Error;
    UnsafeImageContent: typeof K3Error;
    InsufficientDiskSpaceForPull: typeof K3Error;
    StoreFailure: typeof K3Error;
    InvalidRemoveImageParameters: typeof K3Error;
    ImageNotFoundLocally: typeof K3Error;
    ImageInUse: typeof K3Error;
    ImageHasSeveralNames: typeof K3Error;
    InvalidCreateContainerParameters: typeof K3Error;
    ContainerNameInUse: typeof K3Error;
    CreateContainerFailure: typeof K3Error;
    InvalidListContainersParameters: typeof K3Error;
    InvalidInspectContainerParameters: typeof K3Error;
    InvalidRemoveContainerParameters: typeof K3Error;
    RemoveContainerFailure: typeof K3Error;
    ContainerIsRunning: typeof K3Error;
    RuntimeFailure: typeof K3Error;
    InvalidCopyParameters: typeof K3Error;
    CopySourceNotFound: typeof K3Error;
    CopyDestinationNotFound: typeof K3Error;
    CopyFailure: typeof K3Error;
    InvalidRemovePathParameters: typeof K3Error;
    PathNotFoundInContainer: typeof K3Error;
    RemovePathFailure: typeof K3Error;
    InvalidCopyImageParameters: typeof K3Error;
    CopyImageFailure: typeof K3Error;
    InvalidStartContainerParameters: typeof K3Error;
    RuntimeNotFound: typeof K3Error;
    RuntimeNotPermitted: typeof K3Error;
    ContainerStateChanged: typeof K3Error;
    InvalidStopContainerParameters: typeof K3Error;
    InvalidKillContainerParameters: typeof K3Error;
    ContainerNotRunning: typeof K3Error;
    InvalidWaitContainerParameters: typeof K3Error;
    InvalidRestartContainerParameters: typeof K3Error;
    InvalidContainerLogsParameters: typeof K3Error;
    InvalidPauseContainerParameters: typeof K3Error;
    InvalidUnpauseContainerParameters: typeof K3Error;
    ContainerNotPaused: typeof K3Error;
    InvalidCommitContainerParameters: typeof K3Error;
    CommitContainerFailure: typeof K3Error;
    InvalidTagImageParameters: typeof K3Error;
    InvalidPushParameters: typeof K3Error;
    PushImageFailure: typeof K3Error;
    InvalidLoadImageParameters: typeof K3Error;
    ArchiveNotFound: typeof K3Error;
    InvalidArchive: typeof K3Error;
    InsufficientDiskSpaceForLoad: typeof K3Error;
    InvalidImportImageParameters: typeof K3Error;
    ImportSourceNotFound: typeof K3Error;
    InvalidImportArchive: typeof K3Error;
    InsufficientDiskSpaceForImport: typeof K3Error;
    InvalidContainerChangesParameters: typeof K3Error;
    ContainerChangesFailure: typeof K3Error;
    InvalidContainerStatsParameters: typeof K3Error;
    StatsUnavailable: typeof K3Error;
    InvalidSaveImageParameters: typeof K3Error;
    SaveImagePermissionDenied: typeof K3Error;
    InsufficientDiskSpaceForSave: typeof K3Error;
    SaveImageIOFailure: typeof K3Error;
    SaveImageFailure: typeof K3Error;
  }
}

declare class K3Core {
  constructor(options?: K3Core.Options);
  readonly root: string;
  readonly imageCore: K3Core.ImageCore;
  readonly containerCore: K3Core.ContainerCore;
  /** The store's events from every process that uses this root; ends when until passes, on abort, or when the loop is left. */
  events(options?: K3Core.EventsOptions): AsyncIterableIterator<K3Core.Event>;
  static readonly errors: K3Core.Errors;
}

export = K3Core;
