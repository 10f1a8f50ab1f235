using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A loopback port where TCP connects hang instead of completing or being refused: a listener with a
/// backlog of 1 that never accepts, its accept queue filled by our own connections. Linux drops
/// further SYNs while the accept queue is full (tcp_conn_request: sk_acceptq_is_full -> drop), so a
/// client's connect just retransmits its SYN until it gives up: a stand-in for an unreachable host.
/// Fullness is read from the kernel (/proc/net/tcp: a listener's rx_queue is its accept-queue
/// length), not inferred from a connect being slow: under a loaded test run a connect that did
/// complete can look hung, and a queue that is not full lets the gateway's connect through.
/// </summary>
internal sealed class BlackholeListener : IDisposable
{
    private const int Backlog = 1;

    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    public BlackholeListener()
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(Backlog);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;

        // Fill the accept queue until the kernel counts more than the backlog (full). Bounded: 16 tries.
        for (var i = 0; i < 16; i++)
        {
            if (AcceptQueueLength() > Backlog)
            {
                return;
            }
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _fillers.Add(socket);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
            try
            {
                socket.ConnectAsync(IPAddress.Loopback, Port, timeout.Token).AsTask().GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                // Dropped (the queue was full already) or just slow: the kernel's count decides above.
            }
        }
        throw new InvalidOperationException($"could not fill the accept queue of a backlog-{Backlog} listener (queue length {AcceptQueueLength()})");
    }

    /// <summary>Connections waiting in the listener's accept queue, as the kernel counts them.</summary>
    private int AcceptQueueLength()
    {
        var local = $":{Port:X4}";
        foreach (var line in File.ReadLines("/proc/net/tcp").Skip(1))
        {
            // "  0: 0100007F:99D9 00000000:0000 0A 00000000:00000002 ..." (state 0A = LISTEN; tx_queue:rx_queue)
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 4 && fields[1].EndsWith(local, StringComparison.Ordinal) && fields[3] == "0A")
            {
                return Convert.ToInt32(fields[4].Split(':')[1], 16);
            }
        }
        throw new InvalidOperationException($"listener on port {Port} not found in /proc/net/tcp");
    }

    public int Port { get; }

    public string Url => $"http://127.0.0.1:{Port}";

    public void Dispose()
    {
        foreach (var socket in _fillers)
        {
            socket.Dispose();
        }
        _listener.Dispose();
    }
}
