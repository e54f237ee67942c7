package io.doppel.cli;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Where the CLI finds the admin token: --token-file first, then DOPPEL_ADMIN_TOKEN, then the token file of
 * --config (its admin-token-file, else data-dir/admin.token, also from a config that fails validation),
 * then of the default config. A token it cannot use is exit 4 with a message naming the file and why.
 */
class AdminTokenOptionsTest
{
    private static final String TOKEN_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    private static final String TOKEN_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    @TempDir
    Path dir;

    @AfterEach
    void restore()
    {
        AdminOptions.environment = System::getenv;
        AdminOptions.defaultConfig = Path.of(io.doppel.config.ConfigLoader.DEFAULT_PATH);
    }

    @Test
    void theOrderIsTokenFileEnvironmentConfigDefaultConfig() throws Exception
    {
        final Path a = write("a.token", TOKEN_A + "\n");
        final Path config = dir.resolve("node.toml");
        Files.writeString(config, "[node]\nname = \"n\"\ndata-dir = \"" + dir.resolve("data") + "\"\n");
        Files.createDirectories(dir.resolve("data"));
        Files.writeString(dir.resolve("data/admin.token"), TOKEN_B);

        final AdminOptions o = new AdminOptions();
        o.config = config;
        assertThat(o.token()).as("from --config's data-dir").isEqualTo(TOKEN_B);
        AdminOptions.environment = Map.of(AdminOptions.TOKEN_ENV, " " + TOKEN_A + "\n")::get;
        assertThat(o.token()).as("the environment before --config").isEqualTo(TOKEN_A);
        AdminOptions.environment = Map.<String, String>of()::get;
        o.tokenFile = a;
        assertThat(o.token()).as("--token-file first").isEqualTo(TOKEN_A);

        final AdminOptions none = new AdminOptions();
        AdminOptions.defaultConfig = config;
        assertThat(none.token()).as("no option: the default config's token file").isEqualTo(TOKEN_B);

        Files.writeString(config, "[node]\nname = \"n\"\nadmin-token-file = \"" + a + "\"\nbogus = 1\n");
        assertThat(o.token()).as("--token-file still first").isEqualTo(TOKEN_A);
        o.tokenFile = null;
        assertThat(o.token()).as("admin-token-file of a config that fails validation").isEqualTo(TOKEN_A);
    }

    @Test
    void anUnusableTokenIsExit4NamingTheFile() throws Exception
    {
        final AdminOptions o = new AdminOptions();
        o.tokenFile = dir.resolve("missing.token");
        assertThatThrownBy(o::token).isInstanceOfSatisfying(AdminOptions.Failure.class,
            f -> assertThat(f.code).isEqualTo(DoppelCli.EXIT_NOT_ALLOWED))
            .hasMessageContaining("cannot read the admin token from " + o.tokenFile + " (--token-file): no such file;")
            .hasMessageContaining("is the daemon running with this config?");
        o.tokenFile = write("short.token", "abc\n");
        assertThatThrownBy(o::token).hasMessageContaining("the admin token in " + o.tokenFile + " (--token-file) is"
            + " unusable: the token is 3 characters; expected at least 32");
        o.tokenFile = null;
        AdminOptions.environment = Map.of(AdminOptions.TOKEN_ENV, "short")::get;
        assertThatThrownBy(o::token).hasMessageContaining("$DOPPEL_ADMIN_TOKEN: the token is 5 characters");

        AdminOptions.environment = Map.<String, String>of()::get;
        final Path other = dir.resolve("other.toml");
        Files.writeString(other, "[node]\nname = \"n\"\ndata-dir = \"" + dir.resolve("nothing") + "\"\n");
        final CliRun.Result r = CliRun.run("promote", "vm1", "--config", other.toString());
        assertThat(r.code()).as(r.err()).isEqualTo(DoppelCli.EXIT_NOT_ALLOWED);
        assertThat(r.err()).contains("cannot read the admin token from " + dir.resolve("nothing/admin.token")
            + " ([node].admin-token-file of " + other + "): no such file");
    }

    private Path write(final String name, final String text) throws Exception
    {
        final Path f = dir.resolve(name);
        Files.writeString(f, text);
        return f;
    }
}
