using EdgeProxy.Forwarding;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EdgeProxy.Hosting;

/// <summary>
/// Where the general path admits a request: the rules the fast path parses heads by
/// (<see cref="Http1RequestHead"/>, <see cref="HttpSyntax"/>), applied to what Kestrel accepted. Kestrel
/// refuses most malformed heads itself, but takes control bytes in the target, non-token field
/// names, control bytes and UTF-8 in field values, a Host such as `gw:65536`, and any method
/// token; the fast path declines such requests and they end up here too, so every path refuses
/// them alike and nothing of them reaches a backend.
/// </summary>
internal static class RequestAdmission
{
    /// <summary>Why a request is refused: the status and the error's code and message (<see cref="ErrorResponses"/>).</summary>
    public readonly record struct Refusal(int Status, string Code, string Message);

    /// <summary>Null when the request may go on.</summary>
    public static Refusal? Check(HttpContext context)
    {
        var request = context.Request;

        // 1. Methods are case-sensitive (RFC 9110 §9.1); the gateway serves seven, as spelled.
        if (!HttpSyntax.IsMethod(request.Method))
        {
            return new Refusal(405, "method_not_allowed", $"Method {request.Method} is not forwarded.");
        }

        // 2. The target as received (RFC 9112 §3.2): Kestrel passes control bytes, DEL and '#'.
        var rawTarget = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (!string.IsNullOrEmpty(rawTarget) && !HttpSyntax.Holds(rawTarget, HttpSyntax.IsRequestTarget))
        {
            return new Refusal(400, "invalid_request_target",
                "The request target has a byte that is not allowed: a control byte, space, '#' or non-ASCII, or a malformed or %00 escape in the path.");
        }

        // 3. Field lines (RFC 9110 §5.1, §5.5): token names; values of visible ASCII, SP and HTAB.
        foreach (var field in request.Headers)
        {
            if (field.Key.StartsWith(':'))
            {
                continue;   // an HTTP/2 pseudo-header Kestrel lists among the fields
            }
            if (!HttpSyntax.Holds(field.Key, HttpSyntax.IsToken))
            {
                return InvalidField;
            }
            foreach (var value in field.Value)
            {
                if (value is not null && !HttpSyntax.Holds(value, HttpSyntax.IsRequestFieldValue))
                {
                    return InvalidField;
                }
            }
        }

        // 4. Host is an authority (RFC 9110 §7.2): it goes upstream as X-Forwarded-Host.
        foreach (var host in request.Headers.Host)
        {
            if (host is not null && !HttpSyntax.Holds(host.AsSpan().Trim([' ', '\t']), HttpSyntax.IsHost))
            {
                return new Refusal(400, "invalid_host", "The Host field is not a valid host and port.");
            }
        }
        return null;
    }

    private static readonly Refusal InvalidField = new(400, "invalid_header",
        "A request field has an invalid name or value: names are tokens, values visible ASCII, spaces and tabs.");
}
