using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using EdgeProxy.Balancing;
using EdgeProxy.Observability;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The fast path's exchanges on one client connection: what lives as long as the connection (the
/// head buffer, the body reader, the timers and the usage scanner, reused request after request)
/// and the state of the request in progress (one at a time).
/// </summary>
/// <param name="gate">Which requests the fast path serves (<see cref="Http1FastPath.Admit"/>).</param>
/// <param name="shutdownDeadline">The end of a shutdown's drain (<see cref="Hosting.ShutdownDrain.Deadline"/>): it cancels the exchange in flight like the client leaving does.</param>
internal sealed class Http1Exchange : IDisposable
{
    /// <summary>Request bodies up to this size that came with the head go upstream in the head's send (and again on failover).</summary>
    private const int InlineBodyLimit = 64 * 1024;

    private readonly CancellationToken _shutdownDeadline;
    private readonly CancellationTokenRegistration _closeRequested;
    private CancellationTokenSource? _timeouts;
    private UsageScanner? _usage;
    private bool _headTimerArmed;

    public Http1Exchange(ConnectionContext connection, IPAddress peer, bool peerTrusted, Http1FastPath gate, CancellationToken shutdownDeadline = default, bool https = false)
    {
        (Connection, Peer, PeerTrusted, Gate, _shutdownDeadline, Https) = (connection, peer, peerTrusted, gate, shutdownDeadline, https);
        PeerBytes = Encoding.ASCII.GetBytes(peer.ToString());
        // The server's shutdown asks the connection to close: that cancels the pending head read.
        _closeRequested = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested
            .UnsafeRegister(static s => ((PipeReader)s!).CancelPendingRead(), Input) ?? default;
        AwaitHead();
    }

    public ConnectionContext Connection { get; }

    public Http1FastPath Gate { get; }

    public IPAddress Peer { get; }

    /// <summary>The peer as written in X-Forwarded-For / X-Real-IP, formatted once per connection.</summary>
    public byte[] PeerBytes { get; }

    /// <summary>The client connection is TLS (X-Forwarded-Proto: https).</summary>
    public bool Https { get; }

    /// <summary>The peer is a configured trusted proxy: its X-Forwarded-* fields are believed (<see cref="ClientAddress"/>).</summary>
    public bool PeerTrusted { get; }

    /// <summary>Kestrel's keep-alive timeout until a head's first byte, then its headers timeout: cancels the head read.</summary>
    public CancellationTokenSource Idle { get; private set; } = new();

    /// <summary>The server's shutdown asked the connection to close: the request in progress is the last.</summary>
    public bool Closing { get; set; }

    public PipeReader Input => Connection.Transport.Input;
    public PipeWriter Output => Connection.Transport.Output;

    /// <summary>The current request's head (its buffer is rented per request).</summary>
    public Http1RequestHead Head { get; } = new();

    /// <summary>The current response's body reader (<see cref="Http1ResponseBody.Begin"/> per response).</summary>
    public Http1ResponseBody ResponseBody { get; } = new();

    // The request in progress.
    public ModelRoute? Route { get; private set; }

    public ulong? AffinityKey { get; private set; }

    /// <summary>When the request's head was read (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long Started { get; private set; }

    public RequestId RequestId { get; private set; }

    public IPAddress ClientIp { get; private set; } = IPAddress.None;

    /// <summary>The connection closes after this request (the client asked, or the server is shutting down).</summary>
    public bool Close { get; private set; }

    /// <summary>The request's timer (<see cref="ExchangeTimers"/>), linked to the connection closing and the shutdown deadline.</summary>
    public CancellationTokenSource Timeouts { get; private set; } = null!;

    /// <summary>A small body that came with the head, taken at once so that failover can send it again.</summary>
    public byte[]? InlineBody { get; private set; }
    public int InlineLength { get; private set; }

    /// <summary>The request's body was read off the connection in full (else the connection cannot carry another request).</summary>
    public bool BodyConsumed { get; set; }

    public bool BodyStarted { get; set; }
    public Exception? ClientReadError { get; set; }

    /// <summary>The backend of the attempt in progress.</summary>
    public Http1Target? Target { get; set; }

    /// <summary>The upstream request head of the attempt in progress, and its length.</summary>
    public byte[]? RequestHead { get; set; }
    public int RequestHeadLength { get; set; }

    /// <summary>The upstream connection of the attempt in progress; its buffer starts with the response head.</summary>
    public Http1Connection? Upstream { get; set; }

    /// <summary><see cref="Upstream"/> served an earlier request (it may turn out closed by the backend).</summary>
    public bool Reused { get; set; }

    /// <summary>How far the response head was searched for its end.</summary>
    public int HeadScanned { get; set; }

    public Http1ResponseHead Response { get; set; }
    public int ResponseHeadLength { get; set; }

    /// <summary>The client's response head, until the relay ends.</summary>
    public byte[]? ResponseHead { get; set; }

    /// <summary>
    /// Arms the wait for the next head: Kestrel's keep-alive timeout until its first byte. The timer
    /// is re-armed, never disarmed, between requests (one timer change per request instead of two),
    /// and a source that fired during a long exchange is replaced (a fired source cannot be reset).
    /// </summary>
    private void AwaitHead()
    {
        if (Idle.IsCancellationRequested)
        {
            Idle.Dispose();
            Idle = new CancellationTokenSource();
        }
        Idle.CancelAfter(Http1FastPath.KeepAliveTimeout);
        _headTimerArmed = false;
    }

    /// <summary>
    /// More of a head is awaited; from its first byte on, Kestrel's headers timeout applies, armed
    /// once (re-arming it per read would let a client that sends a byte every 29 s hold the connection for ever).
    /// </summary>
    public void HeadBegun(bool anyByte)
    {
        if (anyByte && !_headTimerArmed)
        {
            Idle.CancelAfter(Http1FastPath.RequestHeadersTimeout);
            _headTimerArmed = true;
        }
    }

    /// <summary>A request that is answered with an error and the connection's close, never forwarded.</summary>
    public void Refuse(RequestId requestId)
    {
        RequestId = requestId;
        Close = true;
    }

    /// <summary>Starts the request whose head was just read.</summary>
    public void BeginRequest(ModelRoute route, ulong? affinityKey, long started, RequestId requestId, IPAddress clientIp, bool close)
    {
        (Route, AffinityKey, Started) = (route, affinityKey, started);
        RequestId = requestId;
        ClientIp = clientIp;
        Close = close;
        BodyStarted = false;
        ClientReadError = null;
        // A fresh linked source per request cost an allocation, a registration on the connection's
        // token and its removal, every time: one per connection, reset between requests.
        Timeouts = _timeouts ?? CancellationTokenSource.CreateLinkedTokenSource(Connection.ConnectionClosed, _shutdownDeadline);
        _timeouts = null;
        var length = Head.ContentLength;
        if (length > 0 && length <= InlineBodyLimit && Input.TryRead(out var buffered))
        {
            if (buffered.Buffer.Length >= length)
            {
                InlineLength = (int)length;
                InlineBody = ArrayPool<byte>.Shared.Rent(InlineLength);
                var body = buffered.Buffer.Slice(0, InlineLength);
                body.CopyTo(InlineBody);
                Input.AdvanceTo(body.End);
            }
            else
            {
                Input.AdvanceTo(buffered.Buffer.Start);
            }
        }
        BodyConsumed = length <= 0 || InlineBody is not null;
    }

    /// <summary>The request is written upstream: its heads and inline body go back to their pools (a long stream holds none).</summary>
    public void ReleaseRequest()
    {
        ReturnRequestHead();
        Head.Release();
        if (InlineBody is { } body)
        {
            InlineBody = null;
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    /// <summary>The upstream head's buffer goes back (a failover writes another; the response makes it unneeded).</summary>
    public void ReturnRequestHead()
    {
        if (RequestHead is { } buffer)
        {
            RequestHead = null;
            HeadBuffers.Return(buffer);
        }
    }

    /// <summary>A new exchange timer after the old one fired (for a retry); false when the client left or the drain ended.</summary>
    public bool RenewTimeouts()
    {
        if (Connection.ConnectionClosed.IsCancellationRequested || _shutdownDeadline.IsCancellationRequested)
        {
            return false;
        }
        Timeouts.Dispose();
        Timeouts = CancellationTokenSource.CreateLinkedTokenSource(Connection.ConnectionClosed, _shutdownDeadline);
        return true;
    }

    /// <summary>Ends the request; true when the connection may carry the next one (then its head is awaited).</summary>
    public bool EndRequest(bool keepAlive)
    {
        ReleaseRequest();
        Route = null;
        // Back for the next request unless it fired (a cancelled source cannot be reset).
        if (Timeouts.TryReset())
        {
            _timeouts = Timeouts;
        }
        else
        {
            Timeouts.Dispose();
        }
        if (!keepAlive || Close || !BodyConsumed)
        {
            return false;
        }
        AwaitHead();
        return true;
    }

    /// <summary>The connection's usage scanner, reset for the request that asks.</summary>
    public UsageScanner ResetUsage()
    {
        var usage = _usage ??= new UsageScanner();
        usage.Reset();
        return usage;
    }

    public void Dispose()
    {
        _closeRequested.Dispose();
        Idle.Dispose();
        _timeouts?.Dispose();
        ReleaseRequest();
    }
}
