using System.Net;
using System.Security.Cryptography;

namespace EdgeProxy.Tests.Infrastructure;

/// <summary>Large request and response bodies that are generated and hashed on the fly, never held whole.</summary>
internal static class Bodies
{
    /// <summary>The test backend's `/download` pattern: byte i = (byte)(i * 31 + 7), period 256.</summary>
    public static byte DownloadPatternByte(long i) => unchecked((byte)(i * 31 + 7));

    /// <summary>Lower-case hex SHA-256 of the first <paramref name="length"/> bytes of the download pattern.</summary>
    public static string DownloadPatternSha256(long length)
    {
        var block = new byte[64 * 1024];
        for (var i = 0; i < block.Length; i++)
        {
            block[i] = DownloadPatternByte(i);
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long done = 0; done < length;)
        {
            var n = (int)Math.Min(block.Length, length - done);
            hash.AppendData(block, 0, n); // the pattern's period divides 64 KiB, so every block starts alike
            done += n;
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>Reads <paramref name="stream"/> to its end; returns the byte count and lower-case hex SHA-256.</summary>
    public static async Task<(long Length, string Sha256)> HashAsync(Stream stream, CancellationToken token = default)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[64 * 1024];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, token)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }
        return (total, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    public static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));
}

/// <summary>
/// A request body of <paramref name="length"/> bytes of the download pattern (so its hash is
/// <see cref="Bodies.DownloadPatternSha256"/>), written in 64 KiB pieces. Sent with Content-Length
/// when <paramref name="announceLength"/>, else chunked (its length is "unknown").
/// </summary>
internal sealed class PatternContent(long length, bool announceLength) : HttpContent
{
    private static readonly byte[] Block = BuildBlock();

    private static byte[] BuildBlock()
    {
        var block = new byte[64 * 1024];
        for (var i = 0; i < block.Length; i++)
        {
            block[i] = Bodies.DownloadPatternByte(i);
        }
        return block;
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        for (long sent = 0; sent < length;)
        {
            var n = (int)Math.Min(Block.Length, length - sent);
            await stream.WriteAsync(Block.AsMemory(0, n));
            sent += n;
        }
    }

    protected override bool TryComputeLength(out long computed)
    {
        computed = announceLength ? length : -1;
        return announceLength;
    }
}
