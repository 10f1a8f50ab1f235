namespace EdgeProxy.Configuration;

/// <summary>How an upstream key is presented to a backend (contract: `Authorization` or `x-api-key`).</summary>
internal enum UpstreamAuthMode
{
    /// <summary>`Authorization: Bearer &lt;key&gt;`.</summary>
    Authorization,

    /// <summary>`x-api-key: &lt;key&gt;`.</summary>
    XApiKey,
}

internal static class UpstreamAuthModes
{
    /// <summary>Parses the contract's spellings, case-insensitively (`Authorization`, `bearer`, `x-api-key`).</summary>
    public static bool TryParse(string? value, out UpstreamAuthMode mode)
    {
        UpstreamAuthMode? parsed = value?.Trim().ToLowerInvariant() switch
        {
            "authorization" or "bearer" => UpstreamAuthMode.Authorization,
            "x-api-key" or "x_api_key" or "apikey" => UpstreamAuthMode.XApiKey,
            _ => null,
        };
        mode = parsed ?? default;
        return parsed.HasValue;
    }

    /// <summary>
    /// The header a backend's requests and health checks carry: the backend's api_key over the global
    /// key, in the backend's auth_mode over BACKEND_AUTH_MODE; (null, null) when no key applies.
    /// </summary>
    public static (string? Name, string? Value) Header(BackendConfig backend, GatewaySettings settings)
    {
        var key = backend.ApiKey ?? (settings.BackendApiKey.Length > 0 ? settings.BackendApiKey : null);
        if (key is null)
        {
            return (null, null);
        }
        return (backend.AuthMode ?? settings.BackendAuthMode) switch
        {
            UpstreamAuthMode.XApiKey => ("x-api-key", key),
            _ => ("Authorization", "Bearer " + key),
        };
    }
}
