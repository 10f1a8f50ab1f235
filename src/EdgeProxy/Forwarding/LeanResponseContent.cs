using System.Net;

namespace EdgeProxy.Forwarding;

/// <summary>The body of a lean upstream response; disposing it before the end closes the connection.</summary>
internal sealed class LeanResponseContent(LeanResponseStream stream) : HttpContent
{
    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context)
        => stream.CopyToAsync(target);

    protected override Task SerializeToStreamAsync(Stream target, TransportContext? context, CancellationToken cancellationToken)
        => stream.CopyToAsync(target, cancellationToken);

    protected override Task<Stream> CreateContentReadStreamAsync() => Task.FromResult<Stream>(stream);

    protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) => Task.FromResult<Stream>(stream);

    protected override Stream CreateContentReadStream(CancellationToken cancellationToken) => stream;

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            stream.Dispose();
        }
        base.Dispose(disposing);
    }
}
