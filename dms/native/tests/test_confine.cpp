// Confinement: writes land only in staging files under a root; '..', other
// absolute paths, non-staging names and symlinked directories are refused.
#include <sys/stat.h>
#include <unistd.h>

#include "check.hpp"
#include "dms/confine.hpp"
#include "dms/errors.hpp"

using namespace dms;
using dms_test::TempDir;

TEST_CASE("a staging file under a root is created with its directories") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  Roots roots({d.file("root")});
  File f = roots.open_staging(d.file("root/a/b/.f.dms-1.partial"));
  CHECK(f.fd() >= 0);
  struct stat st {};
  CHECK(::stat(d.file("root/a/b").c_str(), &st) == 0 && S_ISDIR(st.st_mode));
  CHECK(::stat(d.file("root/a/b/.f.dms-1.partial").c_str(), &st) == 0 && (st.st_mode & 0777) == 0600);
}

TEST_CASE("a staging file knows when its name no longer refers to it (published or removed)") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  Roots roots({d.file("root")});
  StagingFile s = roots.open_staging_file(d.file("root/a/.f.dms-1.partial"));
  CHECK(s.still_staged());
  CHECK(::rename(d.file("root/a/.f.dms-1.partial").c_str(), d.file("root/a/f").c_str()) == 0);  // finalize
  CHECK(!s.still_staged());
  StagingFile again = roots.open_staging_file(d.file("root/a/.f.dms-1.partial"));  // a new staging file there
  CHECK(again.still_staged());
  CHECK(!s.still_staged());  // the old descriptor is still not that file
  CHECK(::unlink(d.file("root/a/.f.dms-1.partial").c_str()) == 0);
  CHECK(!again.still_staged());
}

TEST_CASE("paths outside every root are refused") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  ::mkdir(d.file("rootx").c_str(), 0755);
  Roots roots({d.file("root") + "/"});
  CHECK_THROWS_AS(roots.open_staging(d.file("rootx/.f.dms-1.partial")), ConfinementError);  // prefix, not a child
  CHECK_THROWS_AS(roots.open_staging(d.file("root/../rootx/.f.dms-1.partial")), ConfinementError);
  CHECK_THROWS_AS(roots.open_staging("/etc/.passwd.dms-1.partial"), ConfinementError);
  CHECK_THROWS_AS(roots.open_staging("relative/.f.dms-1.partial"), ConfinementError);
  CHECK_THROWS_AS(roots.open_staging(d.file("root")), ConfinementError);
  CHECK(::access(d.file("rootx/.f.dms-1.partial").c_str(), F_OK) != 0);
}

TEST_CASE("only staging file names are writable") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  Roots roots({d.file("root")});
  CHECK_THROWS_AS(roots.open_staging(d.file("root/published.txt")), ConfinementError);
  CHECK_THROWS_AS(roots.open_staging(d.file("root/.x.partial")), ConfinementError);
  CHECK(is_staging_name(".data.bin.dms-abc.partial"));
  CHECK(!is_staging_name("data.bin"));
}

TEST_CASE("a symlinked directory or staging file below the root is refused") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  ::mkdir(d.file("outside").c_str(), 0755);
  CHECK(::symlink(d.file("outside").c_str(), d.file("root/link").c_str()) == 0);
  Roots roots({d.file("root")});
  CHECK_THROWS_AS(roots.open_staging(d.file("root/link/.f.dms-1.partial")), ConfinementError);
  CHECK(::access(d.file("outside/.f.dms-1.partial").c_str(), F_OK) != 0);
  CHECK(::symlink(d.file("outside/target").c_str(), d.file("root/.g.dms-1.partial").c_str()) == 0);
  CHECK_THROWS_AS(roots.open_staging(d.file("root/.g.dms-1.partial")), ConfinementError);
  CHECK(::access(d.file("outside/target").c_str(), F_OK) != 0);
}

TEST_CASE("an existing file is opened for reading, a staging name or a symlink never") {
  TempDir d;
  ::mkdir(d.file("root").c_str(), 0755);
  Roots roots({d.file("root")});
  File staged = roots.open_staging(d.file("root/a/.f.dms-1.partial"));
  CHECK(::rename(d.file("root/a/.f.dms-1.partial").c_str(), d.file("root/a/f").c_str()) == 0);
  CHECK(static_cast<bool>(roots.open_existing(d.file("root/a/f"))));
  File again = roots.open_staging(d.file("root/a/.f.dms-2.partial"));
  CHECK(!roots.open_existing(d.file("root/a/.f.dms-2.partial")));  // exists, regular, but staging
  CHECK(::symlink("f", d.file("root/a/link").c_str()) == 0);
  CHECK(!roots.open_existing(d.file("root/a/link")));
  CHECK(!roots.open_existing(d.file("root/a/missing")));
  CHECK(!roots.open_existing(d.file("elsewhere/f")));
}

TEST_CASE("a root given through a symlink still works") {
  TempDir d;
  ::mkdir(d.file("real").c_str(), 0755);
  CHECK(::symlink(d.file("real").c_str(), d.file("alias").c_str()) == 0);
  Roots roots({d.file("alias")});
  File f = roots.open_staging(d.file("alias/.f.dms-1.partial"));
  CHECK(::access(d.file("real/.f.dms-1.partial").c_str(), F_OK) == 0);
}

TEST_MAIN()
