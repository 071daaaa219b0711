// Type definitions for k3-core.

declare namespace K3Core {
  interface Logger {
    debug?(message: string, fields?: object): void;
    info?(message: string, fields?: object): void;
    warn?(message: string, fields?: object): void;
    error?(message: string, fields?: object): void;
  }

  interface Options {
    /** Console-like logger for each operation; silent when absent. */
    logger?: Logger;
  }

  type Transport = 'docker' | 'oci' | 'oci-archive' | 'docker-archive';

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

  interface ImageCore {
    inspectAnImage(imageName: string, postData: InspectPostData): Promise<InspectResult>;
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
  }
}

declare class K3Core {
  constructor(options?: K3Core.Options);
  readonly imageCore: K3Core.ImageCore;
  static readonly errors: K3Core.Errors;
}

export = K3Core;
