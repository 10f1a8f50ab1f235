namespace EdgeProxy.Tests.Infrastructure;

/// <summary>
/// A fact about the self-contained Native AOT binary: skipped (with the reason shown) unless
/// EDGEPROXY_BIN points at it. xunit 2 has no runtime skip, so the decision is made here.
/// </summary>
public sealed class AotFactAttribute : FactAttribute
{
    public AotFactAttribute()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("EDGEPROXY_BIN")))
        {
            Skip = "needs the Native AOT binary: run ./build.sh and set EDGEPROXY_BIN=dist/edgeproxy";
        }
    }
}
