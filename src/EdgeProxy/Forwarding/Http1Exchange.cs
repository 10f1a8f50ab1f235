using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using EdgeProxy.Balancing;
using EdgeProxy.Observability;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Forwarding;

/// <summary>
/// The fast path's exchanges on one client connection: what lives as long as the connection (the
/// head buffer, the body reader, the timer and the usage scanner, reused request after request)
/// and the state of the request in progress (one at a time).
/// </summary>
/// <param name="shutdownDeadline">The end of a shutdown's drain (<see cref="Hosting.ShutdownDrain.Deadline"/>): it cancels the exchange in flight like the client leaving does.</param>
internal sealed class Http1Exchange(ConnectionContext connection, IPAddress peer, bool peerTrusted, CancellationToken shutdownDeadline = default, bool https = false) : IDisposable
{
    /// <summary>Request bodies up to this size that came with the head go upstream in the head's send (and again on failover).</summary>
    private const int InlineBodyLimit = 64 * 1024;

    private CancellationTokenSource? _timeouts;
    private UsageScanner? _usage;

    public ConnectionContext Connection { get; } = connection;

    public IPAddress Peer { get; } = peer;

    /// <summary>The peer as written in X-Forwarded-For / X-Real-IP, formatted once per connection.</summary>
    public byte[] PeerBytes { get; } = Encoding.ASCII.GetBytes(peer.ToString());

    /// <summary>The client connection is TLS (X-Forwarded-Proto: https).</summary>
    public bool Https { get; } = https;

    /// <summary>The peer is a configured trusted proxy: its X-Forwarded-* fields are believed (<see cref="ClientAddress"/>).</summary>
    public bool PeerTrusted { get; } = peerTrusted;

    public PipeReader Input => Connection.Transport.Input;
    public PipeWriter Output => Connection.Transport.Output;

    /// <summary>The current request's head (its buffer is rented per request).</summary>
    public Http1RequestHead Head { get; } = new();

    /// <summary>The current response's body reader (<see cref="Http1ResponseBody.Begin"/> per response).</summary>
    public Http1ResponseBody ResponseBody { get; } = new();

    // The request in progress.
    public RequestId RequestId { get; private set; }

    public IPAddress ClientIp { get; private set; } = peer;

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

    public Http1ResponseHead Response { get; set; }
    public int ResponseHeadLength { get; set; }

    /// <summary>The client's response head, until the relay ends.</summary>
    public byte[]? ResponseHead { get; set; }

    /// <summary>Starts the request whose head was just read.</summary>
    public void BeginRequest(RequestId requestId, IPAddress clientIp, bool close)
    {
        RequestId = requestId;
        ClientIp = clientIp;
        Close = close;
        BodyStarted = false;
        ClientReadError = null;
        // A fresh linked source per request cost an allocation, a registration on the connection's
        // token and its removal, every time: one per connection, reset between requests.
        Timeouts = _timeouts ?? CancellationTokenSource.CreateLinkedTokenSource(Connection.ConnectionClosed, shutdownDeadline);
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

    /// <summary>The request's head and inline body are written upstream: their buffers go back (a long stream holds none).</summary>
    public void ReleaseRequest()
    {
        Head.Release();
        if (InlineBody is { } body)
        {
            InlineBody = null;
            ArrayPool<byte>.Shared.Return(body);
        }
    }

    /// <summary>Ends the request; true when the connection may carry the next one.</summary>
    public bool EndRequest(bool keepAlive)
    {
        ReleaseRequest();
        // Back for the next request unless it fired (a cancelled source cannot be reset).
        if (Timeouts.TryReset())
        {
            _timeouts = Timeouts;
        }
        else
        {
            Timeouts.Dispose();
        }
        return keepAlive && !Close && BodyConsumed;
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
        _timeouts?.Dispose();
        Head.Release();
    }
}
