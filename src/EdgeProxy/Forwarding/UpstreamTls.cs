using System.Collections.Frozen;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using EdgeProxy.Configuration;
using EdgeProxy.Routing;

namespace EdgeProxy.Forwarding;

/// <summary>
/// Verifies https backends' certificates: the system CAs by default, a backend's own `ca_file`
/// (a private CA) or nothing with an explicit `tls_skip_verify`. SocketsHttpHandler calls this once
/// per new connection, with the connection's SslStream as sender: its target host (the SNI name,
/// the backend URL's host, since the forwarder never sends the client's Host upstream) names the
/// backend's rule. The handler knows no port there, so the config loader refuses two rules for one
/// host.
/// </summary>
internal sealed class UpstreamTls(RouteTableProvider routes)
{
    private volatile Snapshot? _rules;

    public bool Validate(object sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        var host = sender switch
        {
            SslStream stream => stream.TargetHostName,
            HttpRequestMessage { RequestUri: { } uri } => uri.IdnHost,
            _ => null,
        };
        var rule = host is null ? null : RuleFor(host);
        if (rule is null)
        {
            return errors == SslPolicyErrors.None;
        }
        if (rule.TlsSkipVerify)
        {
            return true;
        }
        // A private CA replaces the system roots; the name must still match the URL's host.
        if (certificate is null || (errors & (SslPolicyErrors.RemoteCertificateNotAvailable | SslPolicyErrors.RemoteCertificateNameMismatch)) != 0)
        {
            return false;
        }
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        foreach (var ca in rule.CaCertificates)
        {
            // A ca_file may carry the private CA's intermediates too: they help build the chain, only roots anchor it.
            if (ca.SubjectName.RawData.AsSpan().SequenceEqual(ca.IssuerName.RawData))
            {
                custom.ChainPolicy.CustomTrustStore.Add(ca);
            }
            else
            {
                custom.ChainPolicy.ExtraStore.Add(ca);
            }
        }
        if (chain is not null)
        {
            // The intermediates the backend sent.
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
        }
        return custom.Build(certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData()));
    }

    /// <summary>The backend config with a TLS rule (ca_file or tls_skip_verify) for this host, from the current config.</summary>
    private BackendConfig? RuleFor(string host)
    {
        var config = routes.Current.Config;
        var rules = _rules;
        if (rules is null || !ReferenceEquals(rules.Config, config))
        {
            rules = _rules = new Snapshot(config, Build(config));
        }
        return rules.ByHost.GetValueOrDefault(host.Trim('[', ']'));
    }

    private static FrozenDictionary<string, BackendConfig> Build(BackendsConfig config)
    {
        var map = new Dictionary<string, BackendConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var backend in config.Services.SelectMany(s => s.Models).SelectMany(m => m.Backends))
        {
            if ((backend.TlsSkipVerify || backend.CaFile is not null) && Uri.TryCreate(backend.Url, UriKind.Absolute, out var uri))
            {
                map.TryAdd(uri.IdnHost.Trim('[', ']'), backend);
            }
        }
        return map.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    }

    private sealed record Snapshot(BackendsConfig Config, FrozenDictionary<string, BackendConfig> ByHost);
}
