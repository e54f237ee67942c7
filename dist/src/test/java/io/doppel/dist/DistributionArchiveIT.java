package io.doppel.dist;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The archive that {@code mvn package} builds, used as an operator would: unpack it, run its install.sh
 * into a temporary root (--destdir, no root rights needed), check where every file went, run the
 * installed bin/doppel through a symlink (as /usr/bin/doppel is one), upgrade over it keeping an edited
 * config, and uninstall. Runs after package (failsafe), in a few seconds.
 */
class DistributionArchiveIT
{
    @TempDir
    Path dir;

    @Test
    void unpackInstallRunUpgradeUninstall() throws Exception
    {
        final Path archive = Path.of(System.getProperty("doppel.dist.archive"));
        assertThat(archive).as("the distribution archive (mvn package)").isRegularFile();
        final Tool.Result untar = Tool.run(60, "tar", "-xzf", archive.toString(), "-C", dir.toString());
        assertThat(untar.exit()).as(untar.describe()).isZero();

        // The archive's layout.
        final Path unpacked = dir.resolve(System.getProperty("doppel.dist.root"));
        assertThat(unpacked.resolve("bin/doppel")).isExecutable();
        assertThat(unpacked.resolve("install.sh")).isExecutable();
        for (final String f : new String[] {"lib/doppel.jar", "doppel.toml", "README.md", "VERSION", "systemd/doppel.service",
            "systemd/doppel.sysusers.conf", "systemd/doppel.tmpfiles.conf", "docs/operations.md", "docs/install.md"})
        {
            assertThat(unpacked.resolve(f)).as("in the archive").isRegularFile();
        }
        assertThat(Files.size(unpacked.resolve("lib/doppel.jar"))).as("the shaded jar, with every dependency")
            .isGreaterThan(1L << 20);
        assertThat(Files.readString(unpacked.resolve("VERSION"))).startsWith("doppel ").doesNotContain("${");

        // install.sh into a temporary root.
        final Path root = dir.resolve("root");
        final Tool.Result install = Tool.run(60, unpacked.resolve("install.sh").toString(), "--destdir", root.toString());
        assertThat(install.exit()).as(install.describe()).isZero();
        assertThat(install.output()).contains("doppel installed in " + root.resolve("opt/doppel"));
        final Path opt = root.resolve("opt/doppel");
        assertThat(opt.resolve("bin/doppel")).isExecutable();
        assertThat(opt.resolve("install.sh")).isExecutable();
        assertThat(opt.resolve("lib/doppel.jar")).hasSameBinaryContentAs(unpacked.resolve("lib/doppel.jar"));
        assertThat(opt.resolve("doppel.toml")).hasSameTextualContentAs(unpacked.resolve("doppel.toml"));
        final Path usrBin = root.resolve("usr/bin/doppel");
        assertThat(Files.isSymbolicLink(usrBin)).as(usrBin + " is a symlink").isTrue();
        assertThat(Files.readSymbolicLink(usrBin)).isEqualTo(Path.of("/opt/doppel/bin/doppel"));
        assertThat(root.resolve("etc/doppel/doppel.toml")).hasSameTextualContentAs(unpacked.resolve("doppel.toml"));
        assertThat(root.resolve("usr/lib/systemd/system/doppel.service"))
            .hasSameTextualContentAs(unpacked.resolve("systemd/doppel.service"));
        assertThat(root.resolve("usr/lib/sysusers.d/doppel.conf"))
            .hasSameTextualContentAs(unpacked.resolve("systemd/doppel.sysusers.conf"));
        assertThat(root.resolve("usr/lib/tmpfiles.d/doppel.conf"))
            .hasSameTextualContentAs(unpacked.resolve("systemd/doppel.tmpfiles.conf"));

        // The installed launcher, reached through two symlinks the way /usr/bin/doppel reaches it, with
        // JAVA_HOME naming the Java that runs this test.
        final Path link = dir.resolve("link/doppel");
        Files.createDirectories(link.getParent());
        Files.createSymbolicLink(dir.resolve("link/hop"), opt.resolve("bin/doppel"));
        Files.createSymbolicLink(link, dir.resolve("link/hop"));
        final Map<String, String> env = Map.of("JAVA_HOME", System.getProperty("java.home"), "JAVA_OPTS", "-Xmx256m");

        final Tool.Result help = Tool.run(60, env, link.toString(), "--help");
        assertThat(help.exit()).as(help.describe()).isZero();
        assertThat(help.output()).contains("Usage: doppel").contains("daemon").contains("verify").contains("resync")
            .contains("make-image").contains("Exit codes:");

        final Path image = dir.resolve("a.img");
        final Tool.Result make = Tool.run(60, env, link.toString(), "make-image", image.toString(), "--size", "4MiB");
        assertThat(make.exit()).as(make.describe()).isZero();
        assertThat(make.output()).contains("4.0 MiB mixed image written");
        assertThat(Files.size(image)).isEqualTo(4L << 20);
        Files.copy(image, dir.resolve("b.img"));
        final Tool.Result hash = Tool.run(60, env, link.toString(), "hash-image", image.toString(), dir.resolve("b.img").toString());
        assertThat(hash.exit()).as(hash.describe()).isZero();
        final String[] lines = hash.output().strip().split("\n");
        assertThat(lines).hasSize(2);
        assertThat(lines[0].split(" ")[0]).matches("[0-9a-f]{32}").isEqualTo(lines[1].split(" ")[0]);

        final Tool.Result bad = Tool.run(60, env, link.toString(), "status", "--no-such-option");
        assertThat(bad.exit()).as("exit codes pass through the launcher: " + bad.describe()).isEqualTo(2);

        // Upgrade: install again; an edited config stays as it is.
        final Path config = root.resolve("etc/doppel/doppel.toml");
        Files.writeString(config, "# edited by the operator\n" + Files.readString(config));
        final Tool.Result upgrade = Tool.run(60, unpacked.resolve("install.sh").toString(), "--destdir",
            root.toString());
        assertThat(upgrade.exit()).as(upgrade.describe()).isZero();
        assertThat(upgrade.output()).contains("kept " + config).contains("doppel upgraded");
        assertThat(Files.readString(config)).startsWith("# edited by the operator\n");

        // Uninstall with the installed copy of install.sh: the program and the units go, the config stays.
        final Tool.Result uninstall = Tool.run(60, opt.resolve("install.sh").toString(), "--uninstall", "--destdir",
            root.toString());
        assertThat(uninstall.exit()).as(uninstall.describe()).isZero();
        assertThat(opt).doesNotExist();
        assertThat(Files.exists(usrBin, java.nio.file.LinkOption.NOFOLLOW_LINKS)).as(usrBin + " removed").isFalse();
        assertThat(root.resolve("usr/lib/systemd/system/doppel.service")).doesNotExist();
        assertThat(root.resolve("usr/lib/sysusers.d/doppel.conf")).doesNotExist();
        assertThat(root.resolve("usr/lib/tmpfiles.d/doppel.conf")).doesNotExist();
        assertThat(config).isRegularFile();
    }
}
