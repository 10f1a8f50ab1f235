using System.Net;
using Microsoft.Extensions.Logging;

namespace EdgeProxy.Configuration;

/// <summary>
/// Process-level settings. Precedence (contract): process environment, then `.env` in the working
/// directory, then the defaults below. Defaults marked "contract" come from the replaced product.
/// </summary>
internal sealed record GatewaySettings
{
    /// <summary>Listen port on all interfaces (contract default 8000; 0 picks a free port).</summary>
    public int Port { get; init; } = 8000;

    /// <summary>Listen address (not in the contract; default all interfaces as the contract says).</summary>
    public string Host { get; init; } = "0.0.0.0";

    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>Contract default; when it is absent `./backends.json` is tried too.</summary>
    public string BackendsConfigPath { get; init; } = "./config/backends.json";

    public bool BackendsConfigPathExplicit { get; init; }

    /// <summary>Seconds between active checks (contract default 30).</summary>
    public TimeSpan HealthCheckInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Seconds before a check counts as failed (contract default 5).</summary>
    public TimeSpan HealthCheckTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Consecutive failed checks before a backend is marked unhealthy.</summary>
    public int UnhealthyThreshold { get; init; } = 2;

    /// <summary>Consecutive passed checks before an unhealthy backend is marked healthy again.</summary>
    public int HealthyThreshold { get; init; } = 1;

    /// <summary>Contract REQUEST_TIMEOUT (30 s): default of the first-byte and stream-idle timers.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>TCP connect timeout to a backend; a connect timeout fails over to another backend.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time to response headers and first body chunk (default REQUEST_TIMEOUT).</summary>
    public TimeSpan FirstByteTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Longest wait for the next part of a client's request body (default REQUEST_TIMEOUT; nginx's
    /// client_body_timeout). Time spent waiting for the client is the client's: it ends in a 408
    /// and never counts against the backend, whose first-byte timer starts once the body is sent.
    /// </summary>
    public TimeSpan ClientBodyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Longest silence between two chunks of a response body (default REQUEST_TIMEOUT).</summary>
    public TimeSpan StreamIdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Upstream connection cap per backend (contract default 100).</summary>
    public int MaxConnections { get; init; } = 100;

    /// <summary>MAX_ATTEMPTS: backends one request may be sent to (the first and its retries), at most.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>RETRY_BUFFER_KB in bytes: a request body up to this size is kept while it is sent, so a refused request can go to another backend whole.</summary>
    public int RetryBufferBytes { get; init; } = 1024 * 1024;

    /// <summary>
    /// HTTP1_FAST_PATH: "on" (default) or "off". On, plain HTTP/1.1 proxy requests to models whose
    /// backends are all http:// are relayed on Kestrel's transport without the HTTP object model
    /// (<see cref="Forwarding.Http1FastPath"/>); everything else is served by the general path either way.
    /// </summary>
    public bool Http1FastPath { get; init; } = true;

    /// <summary>
    /// IO_THREADS: socket I/O threads, i.e. epoll event loops. 0 (default) keeps the runtime's choice,
    /// one per core. Request work runs inline on these threads (inline completions, Program.cs), so each
    /// is an event loop like an nginx worker process; fewer loops than cores leave CPU to processes that
    /// share the box, and on the 2-core bench box one loop halved the p99 at the same throughput.
    /// </summary>
    public int IoThreads { get; init; }

    /// <summary>
    /// TRANSPORT: "epoll" (the default on Linux, the only OS that has it: the gateway's own event
    /// loops, <see cref="EdgeProxy.Transport.EpollTransportFactory"/>, IO_THREADS of them, with the
    /// fast path's upstream sockets on the same loops) or "sockets" (Kestrel's socket transport on
    /// the runtime's socket engine; the default elsewhere).
    /// </summary>
    public bool EpollTransport { get; init; }

    /// <summary>Idle upstream connections kept per backend (contract default 20).</summary>
    public int MaxKeepAliveConnections { get; init; } = 20;

    /// <summary>Global key: what clients present and the upstream key of backends without their own.</summary>
    public string BackendApiKey { get; init; } = "";

    public UpstreamAuthMode BackendAuthMode { get; init; } = UpstreamAuthMode.Authorization;

    /// <summary>Peers whose X-Forwarded-* headers are trusted (IPs or CIDRs). Empty: trust nobody.</summary>
    public IReadOnlyList<IPNetwork> TrustedProxies { get; init; } = [];

    /// <summary>Allowed CORS origins; `*` (the contract default) allows any.</summary>
    public IReadOnlyList<string> CorsAllowOrigins { get; init; } = ["*"];

    /// <summary>When every backend of a model is unhealthy: try them anyway (panic) or answer 503.</summary>
    public bool FailFastWhenAllUnhealthy { get; init; }

    /// <summary>Passive health: consecutive 5xx answers on live traffic that eject a backend.</summary>
    public int PassiveFailureThreshold { get; init; } = 5;

    /// <summary>Passive health: first ejection length; doubles per repeated ejection up to the max.</summary>
    public TimeSpan EjectionBase { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan EjectionMax { get; init; } = TimeSpan.FromSeconds(300);

    /// <summary>At most this share of one model's backends may be ejected at once.</summary>
    public double MaxEjectionPercent { get; init; } = 50;

    /// <summary>A re-admitted backend's share ramps from 10% to 100% over this window (0 = off).</summary>
    public TimeSpan SlowStart { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Largest accepted request body in bytes (Kestrel's 30 MB default is too small for multimodal prompts).</summary>
    public long MaxRequestBodySize { get; init; } = 256L * 1024 * 1024;

    /// <summary>When set, `/metrics` requires this key (Bearer or X-API-Key).</summary>
    public string MetricsKey { get; init; } = "";

    /// <summary>When set, `/metrics` is served only on this separate port (loopback-bindable).</summary>
    public int MetricsPort { get; init; }

    /// <summary>
    /// When set, an extra cleartext HTTP/2 (prior knowledge, h2c) listener: Kestrel cannot offer h2c
    /// on the HTTP/1.1 port, and gRPC-style or multiplexing clients want it.
    /// </summary>
    public int Http2Port { get; init; }

    /// <summary>
    /// SHUTDOWN_TIMEOUT: after SIGTERM, how long in-flight requests and streams may go on; those still
    /// open then end with the shutdown error (503, or the stream's error frame). Default 25 s: with the
    /// host's 5 s allowance after it (`ShutdownDrain.AbortAllowance`) the process
    /// is done within Kubernetes' default 30 s grace period, before the SIGKILL that would cut the
    /// streams without their error frame (systemd's default TimeoutStopSec is 90 s).
    /// </summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(25);

    /// <summary>Watch backends.json and reload it on change.</summary>
    public bool WatchConfig { get; init; } = true;

    /// <summary>TLS_CERT_FILE: PEM certificate, leaf first then its chain; with <see cref="TlsKeyFile"/> it turns TLS on.</summary>
    public string TlsCertFile { get; init; } = "";

    /// <summary>TLS_KEY_FILE: the certificate's PEM private key (unencrypted PKCS#8, PKCS#1 or SEC1).</summary>
    public string TlsKeyFile { get; init; } = "";

    /// <summary>TLS_PORT: 0 (default) terminates TLS on PORT; a port number adds a TLS listener there and PORT stays cleartext.</summary>
    public int TlsPort { get; init; }

    public bool TlsEnabled => TlsCertFile.Length > 0;
}
