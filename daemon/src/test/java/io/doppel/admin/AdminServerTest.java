package io.doppel.admin;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.doppel.log.Log;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The admin endpoint's guard over real HTTP: a verb without the token is 401 (with WWW-Authenticate), with
 * a wrong one 403, each with a JSON error naming the token file, a log line naming the remote address, the
 * verb and the volume, and a count in doppel_admin_refused_total{reason}; the verb does not run. With the
 * right token it runs. GET /status and /metrics stay open; POST /reload is guarded like the verbs.
 */
class AdminServerTest
{
    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newHttpClient();
    private final List<String> ran = new CopyOnWriteArrayList<>();
    private final ByteArrayOutputStream log = new ByteArrayOutputStream();

    @TempDir
    Path dir;

    private AdminToken token;
    private AdminGuard guard;
    private AdminServer server;
    private PrintStream oldLog;
    private String base;

    @BeforeEach
    void start() throws Exception
    {
        oldLog = Log.output(new PrintStream(log, true, StandardCharsets.UTF_8));
        token = AdminToken.loadOrCreate(dir.resolve("admin.token"));
        guard = new AdminGuard("alpha", token);
        final Metrics metrics = new Metrics("alpha", List.of());
        metrics.addAdmin(guard);
        server = AdminServer.start("alpha", new InetSocketAddress("127.0.0.1", 0), () -> Map.of("node", "alpha"),
            (volume, verb, options) ->
            {
                ran.add(verb + " " + volume);
                return Map.of("message", verb + " done");
            }, metrics::scrape, () ->
            {
                ran.add("reload");
                return Map.of("accepted", true, "changes", List.of());
            }, guard);
        base = "http://127.0.0.1:" + server.address().getPort();
    }

    @AfterEach
    void stop()
    {
        server.close();
        Log.output(oldLog);
    }

    @Test
    void aVerbWithoutTheTokenIs401AndDoesNotRun() throws Exception
    {
        final HttpResponse<String> r = post("/volumes/vm1/promote", null);
        assertThat(r.statusCode()).isEqualTo(401);
        assertThat(r.headers().firstValue("WWW-Authenticate")).hasValue("Bearer realm=\"doppel admin\"");
        assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(t -> assertThat(t).startsWith("application/json"));
        final JsonNode body = JSON.readTree(r.body());
        assertThat(body.path("error").asText()).contains("promote vm1 changes state and needs the admin token")
            .contains("Authorization: Bearer").contains(token.file().toString());
        assertThat(ran).isEmpty();
        assertThat(guard.refused(AdminGuard.Reason.MISSING_TOKEN)).isEqualTo(1);
        assertThat(log.toString(StandardCharsets.UTF_8)).containsPattern(
            "WARN  alpha/admin: refused promote vm1 from 127\\.0\\.0\\.1:[0-9]+: missing-token");
        assertThat(metric("missing-token")).isEqualTo(1.0);

        final HttpResponse<String> otherScheme = post("/volumes/vm1/pause", "Basic " + token.value());
        assertThat(otherScheme.statusCode()).as("not a Bearer token").isEqualTo(401);
        assertThat(ran).isEmpty();
    }

    @Test
    void aWrongTokenIs403AndDoesNotRun() throws Exception
    {
        final String wrong = token.value().substring(0, 63) + (token.value().endsWith("0") ? "1" : "0");
        final HttpResponse<String> r = post("/volumes/vm1/demote", "Bearer " + wrong);
        assertThat(r.statusCode()).isEqualTo(403);
        assertThat(JSON.readTree(r.body()).path("error").asText()).contains("demote vm1 refused: the admin token does"
            + " not match the one in " + token.file());
        assertThat(ran).isEmpty();
        assertThat(log.toString(StandardCharsets.UTF_8)).containsPattern(
            "refused demote vm1 from 127\\.0\\.0\\.1:[0-9]+: wrong-token");
        assertThat(metric("wrong-token")).isEqualTo(1.0);
        assertThat(metric("missing-token")).isZero();

        // A second refusal within the second is counted but not logged; the next line says how many were not.
        post("/volumes/vm1/demote", "Bearer " + wrong);
        assertThat(metric("wrong-token")).isEqualTo(2.0);
        assertThat(log.toString(StandardCharsets.UTF_8).lines().filter(l -> l.contains("wrong-token")).count())
            .isEqualTo(1);
    }

    @Test
    void theRightTokenRunsTheVerbAndReload() throws Exception
    {
        final HttpResponse<String> r = post("/volumes/vm1/promote?force=true", "Bearer " + token.value());
        assertThat(r.statusCode()).as(r.body()).isEqualTo(200);
        assertThat(JSON.readTree(r.body()).path("message").asText()).isEqualTo("promote done");
        assertThat(post("/volumes/vm1/verify", "bearer  " + token.value() + " ").statusCode())
            .as("scheme case-insensitive, spaces around the token ignored").isEqualTo(200);
        assertThat(post("/reload", "Bearer " + token.value()).statusCode()).isEqualTo(200);
        assertThat(ran).containsExactly("promote vm1", "verify vm1", "reload");
        assertThat(metric("missing-token") + metric("wrong-token") + metric("no-verb-header")).isZero();
    }

    @Test
    void reloadAndPlainVerifyNeedTheTokenToo() throws Exception
    {
        assertThat(post("/reload", null).statusCode()).isEqualTo(401);
        assertThat(post("/volumes/vm1/verify", null).statusCode()).isEqualTo(401);
        assertThat(ran).isEmpty();
        assertThat(log.toString(StandardCharsets.UTF_8)).contains("refused reload from 127.0.0.1:");
    }

    @Test
    void statusAndMetricsStayOpenAndVerbsWithoutTheHeaderAreRefused() throws Exception
    {
        final HttpResponse<String> status = http.send(HttpRequest.newBuilder(URI.create(base + "/status")).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(status.statusCode()).isEqualTo(200);
        assertThat(JSON.readTree(status.body()).path("node").asText()).isEqualTo("alpha");
        final HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(metrics.statusCode()).isEqualTo(200);
        assertThat(metrics.body()).contains("# HELP doppel_admin_refused_total");

        final HttpResponse<String> noHeader = http.send(HttpRequest.newBuilder(URI.create(base + "/volumes/vm1/pause"))
            .header("Authorization", "Bearer " + token.value()).POST(HttpRequest.BodyPublishers.noBody()).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(noHeader.statusCode()).as("the token alone is not enough: a page could not send it, but a verb"
            + " still says it is one").isEqualTo(403);
        assertThat(metric("no-verb-header")).isEqualTo(1.0);
        assertThat(http.send(HttpRequest.newBuilder(URI.create(base + "/volumes/vm1/pause")).build(),
            HttpResponse.BodyHandlers.ofString()).statusCode()).as("GET of a verb").isEqualTo(405);
        assertThat(ran).isEmpty();
    }

    private HttpResponse<String> post(final String path, final String authorization) throws Exception
    {
        final HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path)).header(AdminServer.VERB_HEADER, "1")
            .POST(HttpRequest.BodyPublishers.noBody());
        if (authorization != null)
        {
            b.header("Authorization", authorization);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    /** doppel_admin_refused_total{reason} from GET /metrics. */
    private double metric(final String reason) throws Exception
    {
        final String text = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
            HttpResponse.BodyHandlers.ofString()).body();
        return text.lines().filter(l -> l.startsWith("doppel_admin_refused_total{") && l.contains("reason=\"" + reason + "\""))
            .mapToDouble(l -> Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1))).findFirst()
            .orElseThrow(() -> new AssertionError("no doppel_admin_refused_total{reason=" + reason + "} in\n" + text));
    }
}
