using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A loopback port where TCP connects hang instead of completing or being refused: a listener with a
/// backlog of 1 that never accepts, its accept queue filled by our own connections. Linux drops
/// further SYNs while the accept queue is full (tcp_conn_request: sk_acceptq_is_full -> drop), so a
/// client's connect just retransmits its SYN until it gives up: a stand-in for an unreachable host.
/// </summary>
internal sealed class BlackholeListener : IDisposable
{
    private readonly Socket _listener;
    private readonly List<Socket> _fillers = [];

    public BlackholeListener()
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(1);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;

        // Fill the accept queue: connects complete until it is full, then one hangs. Bounded: 16 tries.
        for (var i = 0; i < 16; i++)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            _fillers.Add(socket);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            try
            {
                socket.ConnectAsync(IPAddress.Loopback, Port, timeout.Token).AsTask().GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                return; // this connect hung: the queue is full
            }
        }
        throw new InvalidOperationException("could not fill the accept queue of a backlog-1 listener (connects never hang here)");
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
