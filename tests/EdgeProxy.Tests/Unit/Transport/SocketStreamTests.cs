using System.Net;
using System.Net.Sockets;
using EdgeProxy.Transport;
using Microsoft.AspNetCore.Connections;

namespace EdgeProxy.Tests.Unit.Transport;

/// <summary>
/// The epoll connection's socket as a stream (what SslStream runs on with TLS), on real loopback
/// sockets: a zero-byte read waits for data without taking it, reads return what arrived and 0 at
/// the peer's FIN, a write larger than the kernel takes completes as the peer reads, and a
/// synchronous write sends what the kernel takes at once.
/// </summary>
public sealed class SocketStreamTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly EpollLoops _loops = new(1);
    private IConnectionListener _listener = null!;

    public async Task InitializeAsync()
        => _listener = await new EpollTransportFactory(_loops).BindAsync(new IPEndPoint(IPAddress.Loopback, 0));

    public async Task DisposeAsync()
    {
        await _listener.UnbindAsync();
        await _listener.DisposeAsync();
        _loops.Dispose();
    }

    private async Task<(Socket Client, EpollConnection Server, Stream Stream)> ConnectAsync()
    {
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = _listener.AcceptAsync().AsTask();
        await client.ConnectAsync(_listener.EndPoint);
        var server = (EpollConnection)(await accept.WaitAsync(Patience))!;
        return (client, server, server.OpenStream());
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_leaves_it_for_the_next_read()
    {
        var (client, server, stream) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;

        var buffer = new byte[16];
        await client.SendAsync("ping"u8.ToArray());
        Assert.Equal(4, await stream.ReadAsync(buffer).AsTask().WaitAsync(Patience));
        Assert.Equal("ping"u8.ToArray(), buffer[..4]);

        // The socket is known empty now: a zero-byte read waits for the next bytes without taking them.
        var zero = stream.ReadAsync(Memory<byte>.Empty);
        await Task.Delay(50);
        Assert.False(zero.IsCompleted);
        await client.SendAsync("pong"u8.ToArray());
        Assert.Equal(0, await zero.AsTask().WaitAsync(Patience));
        Assert.Equal(4, await stream.ReadAsync(buffer).AsTask().WaitAsync(Patience));
        Assert.Equal("pong"u8.ToArray(), buffer[..4]);

        client.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await stream.ReadAsync(buffer).AsTask().WaitAsync(Patience));   // the FIN
    }

    [Fact]
    public async Task A_write_larger_than_the_kernel_takes_completes_as_the_peer_reads()
    {
        var (client, server, stream) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;
        var data = new byte[32 << 20];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)(i * 31 + 7);
        }

        var write = stream.WriteAsync(data).AsTask();
        await Task.Delay(100);
        Assert.False(write.IsCompleted);   // the peer has read nothing: the rest waits for room

        var received = new byte[data.Length];
        var total = 0;
        while (total < received.Length)
        {
            var n = await client.ReceiveAsync(received.AsMemory(total)).AsTask().WaitAsync(Patience);
            Assert.True(n > 0, "the stream's bytes ended early");
            total += n;
        }
        await write.WaitAsync(Patience);
        Assert.Equal(data, received);
    }

    [Fact]
    public async Task A_synchronous_write_sends_what_the_kernel_takes_and_fails_rather_than_wait()
    {
        var (client, server, stream) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;

        stream.Write("last bytes"u8);
        var buffer = new byte[16];
        var n = await client.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(Patience);
        Assert.Equal("last bytes"u8.ToArray(), buffer[..n]);

        // The peer reads nothing more: a synchronous write of more than the kernel holds fails instead of blocking.
        Assert.Throws<IOException>(() => stream.Write(new byte[64 << 20]));
    }

    [Fact]
    public async Task An_aborted_connection_fails_its_reads_and_writes()
    {
        var (client, server, stream) = await ConnectAsync();
        await using var _ = server;
        using var __ = client;

        var read = stream.ReadAsync(new byte[16]).AsTask();
        server.Abort(new ConnectionAbortedException("test abort"));
        await Assert.ThrowsAsync<ConnectionAbortedException>(() => read.WaitAsync(Patience));
        await Assert.ThrowsAsync<ConnectionAbortedException>(() => stream.WriteAsync(new byte[8]).AsTask().WaitAsync(Patience));
    }
}
