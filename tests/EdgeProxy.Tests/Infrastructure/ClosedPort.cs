using System.Net;
using System.Net.Sockets;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A loopback port that refuses connections for as long as this object lives: a socket bound to it
/// but not listening. Unlike a port that was merely free a moment ago, no other process (a gateway
/// started on PORT=0, say) can take it meanwhile, so a "dead backend" stays dead.
/// </summary>
internal sealed class ClosedPort : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public ClosedPort() => _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));

    public int Port => ((IPEndPoint)_socket.LocalEndPoint!).Port;

    public void Dispose() => _socket.Dispose();
}
