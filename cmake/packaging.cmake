# cmake/packaging.cmake — what `cmake --install` and the Debian package add to
# the library, the headers and the CLI: the man pages, bash completion, the
# systemd unit, the documentation; and the CPack configuration of
# numacma_<version>_<arch>.deb (scripts/package.sh runs cpack).
#
#   numacma.1       generated at build time from the built CLI's --help
#                   (packaging/gen_cli_docs.py), so it lists every command the
#                   tool has; numacma.3 is written by hand (packaging/man/)
#   completion      generated the same way: share/bash-completion/completions/numacma
#   unit            numacma-reserve@.service, its numacma and documentation
#                   paths those of the prefix installed to (see below)

# ---- man pages and bash completion, from the CLI ------------------------------
option(NUMACMA_CLI_DOCS "Generate numacma(1) and the bash completion from the CLI at build time" ON)
if(NUMACMA_CLI_DOCS AND CMAKE_CROSSCOMPILING AND NOT CMAKE_CROSSCOMPILING_EMULATOR)
  message(STATUS "numacma: cross-compiling: numacma(1) and the bash completion are not generated")
  set(NUMACMA_CLI_DOCS OFF)
endif()
if(NUMACMA_CLI_DOCS)
  find_package(Python3 COMPONENTS Interpreter REQUIRED)  # scripts/deps.sh build installs python3
  find_program(NUMACMA_GZIP gzip REQUIRED)
  set(_docs ${CMAKE_BINARY_DIR}/packaging)
  add_custom_command(
    OUTPUT ${_docs}/man/numacma.1 ${_docs}/bash-completion/numacma
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_docs}/man ${_docs}/bash-completion
    COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/packaging/gen_cli_docs.py
            --cli $<TARGET_FILE:numacma_cli> --version ${PROJECT_VERSION}
            --man-in ${PROJECT_SOURCE_DIR}/packaging/man/numacma.1.in --man ${_docs}/man/numacma.1
            --completion ${_docs}/bash-completion/numacma
    DEPENDS numacma_cli ${PROJECT_SOURCE_DIR}/packaging/gen_cli_docs.py
            ${PROJECT_SOURCE_DIR}/packaging/man/numacma.1.in
    COMMENT "numacma(1) and the bash completion from `numacma --help`"
    VERBATIM)
  # Installed gzipped, as Debian ships man pages (-n: no name or time inside).
  foreach(page 1 3)
    if(page EQUAL 1)
      set(_src ${_docs}/man/numacma.1)
    else()
      set(_src ${PROJECT_SOURCE_DIR}/packaging/man/numacma.3)
    endif()
    add_custom_command(
      OUTPUT ${_docs}/man/numacma.${page}.gz
      COMMAND ${NUMACMA_GZIP} -9nc ${_src} > ${_docs}/man/numacma.${page}.gz
      DEPENDS ${_src}
      VERBATIM)
  endforeach()
  add_custom_target(numacma_cli_docs ALL
    DEPENDS ${_docs}/man/numacma.1.gz ${_docs}/man/numacma.3.gz ${_docs}/bash-completion/numacma)
  install(FILES ${_docs}/man/numacma.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
  install(FILES ${_docs}/man/numacma.3.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man3)
  install(FILES ${_docs}/bash-completion/numacma
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
endif()

# ---- the systemd unit that reserves a shared pool at boot ----------------------
# The unit in the tree runs /usr/bin/numacma; the installed one runs the
# numacma of the prefix it is installed to (`cmake --install --prefix DIR`
# included), and points at that prefix's documentation. Where it goes:
# NUMACMA_SYSTEMD_UNIT_DIR when set (relative to the prefix, or absolute);
# else, installed to /usr (the Debian package, a distribution-style install),
# systemd's own system unit directory (pkg-config systemd
# systemdsystemunitdir: /lib/systemd/system on Debian 12); else
# <prefix>/lib/systemd/system.
set(NUMACMA_SYSTEMD_UNIT_DIR "" CACHE STRING
    "Where `install` puts numacma-reserve@.service (relative to the prefix, or absolute; empty: see cmake/packaging.cmake)")
if(NUMACMA_SYSTEMD_UNIT_DIR STREQUAL "lib/systemd/system")
  # The default of build trees configured before the package existed: what
  # the automatic choice gives for any prefix but /usr, where it gives
  # systemd's own directory (the same one on a merged-/usr system).
  set(NUMACMA_SYSTEMD_UNIT_DIR "" CACHE STRING "" FORCE)
endif()
set(_sd_dir "/lib/systemd/system")
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_get_variable(_sd_pc systemd systemdsystemunitdir)
  if(_sd_pc)
    set(_sd_dir "${_sd_pc}")
  endif()
endif()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${PROJECT_SOURCE_DIR}/packaging/systemd/numacma-reserve@.service)
install(CODE "
  set(_unit_dir \"${NUMACMA_SYSTEMD_UNIT_DIR}\")
  if(_unit_dir STREQUAL \"\")
    if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
      set(_unit_dir \"${_sd_dir}\")
    else()
      set(_unit_dir \"lib/systemd/system\")
    endif()
  endif()
  if(NOT IS_ABSOLUTE \"\${_unit_dir}\")
    set(_unit_dir \"\${CMAKE_INSTALL_PREFIX}/\${_unit_dir}\")
  endif()
  foreach(_d BINDIR DOCDIR)
    if(_d STREQUAL BINDIR)
      set(_rel \"${CMAKE_INSTALL_BINDIR}\")
    else()
      set(_rel \"${CMAKE_INSTALL_DOCDIR}\")
    endif()
    if(IS_ABSOLUTE \"\${_rel}\")
      set(_full_\${_d} \"\${_rel}\")
    else()
      set(_full_\${_d} \"\${CMAKE_INSTALL_PREFIX}/\${_rel}\")
    endif()
  endforeach()
  file(READ \"${PROJECT_SOURCE_DIR}/packaging/systemd/numacma-reserve@.service\" _unit)
  string(REPLACE \"/usr/bin/numacma\" \"\${_full_BINDIR}/numacma\" _unit \"\${_unit}\")
  string(REPLACE \"/usr/share/doc/numacma\" \"\${_full_DOCDIR}\" _unit \"\${_unit}\")
  # One staging file per destination: cpack and a `cmake --install --prefix`
  # may run at once on the same tree (the package and consumer tests do).
  string(MD5 _key \"\$ENV{DESTDIR}|\${CMAKE_INSTALL_PREFIX}\")
  set(_staged \"${CMAKE_BINARY_DIR}/packaging/unit/\${_key}/numacma-reserve@.service\")
  file(WRITE \"\${_staged}\" \"\${_unit}\")
  file(INSTALL DESTINATION \"\${_unit_dir}\" TYPE FILE FILES \"\${_staged}\")
")

# ---- documentation ---------------------------------------------------------------
install(FILES packaging/systemd/example.conf docs/shared.md docs/api.md docs/cli.md docs/semantics.md
              docs/params.md docs/backings.md docs/vfio.md docs/design.md README.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR} RENAME copyright)

# ---- the Debian package (CPack) -----------------------------------------------------
# scripts/package.sh configures a tree with CMAKE_INSTALL_PREFIX=/usr (so the
# library directory is Debian's multiarch one), builds it and runs cpack;
# tests/package/check_package.py checks the result. Any build tree can be
# packaged: `cpack --config <build>/CPackConfig.cmake`.
find_program(NUMACMA_DPKG dpkg)
if(NUMACMA_DPKG)
  execute_process(COMMAND ${NUMACMA_DPKG} --print-architecture OUTPUT_VARIABLE NUMACMA_DEB_ARCH
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
endif()
if(NOT NUMACMA_DEB_ARCH)
  set(NUMACMA_DEB_ARCH "${CMAKE_SYSTEM_PROCESSOR}")
endif()
set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "numacma")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_VENDOR "the numacma authors")
set(CPACK_PACKAGE_CONTACT "numacma authors <dev@numacma.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE "${NUMACMA_DEB_ARCH}")
set(CPACK_DEBIAN_FILE_NAME "numacma_${PROJECT_VERSION}_${NUMACMA_DEB_ARCH}.deb")
set(CPACK_DEBIAN_PACKAGE_SECTION "libs")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
# Depends: from the ELF files (dpkg-shlibdeps: libnuma1, libc6, libstdc++6,
# libgcc-s1); linking the static archive needs libnuma-dev too.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libnuma-dev, pkg-config, cmake")
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the rest.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "Linux's per-NUMA CMA (cma=, cma_pernuma=, numa_cma=) and dma_alloc_coherent()
rebuilt for user-space drivers: physically contiguous (or IOVA-contiguous,
with VFIO), pinned DMA memory on the device's own NUMA node, falling back as
the kernel does and freed back to the area it came from.
.
This package holds the numacma tool, the shared library and the static
archive, the C and C++ headers, CMake and pkg-config files, the man pages
numacma(1) and numacma(3), bash completion and the systemd unit
numacma-reserve@.service that reserves a shared pool at boot.")
include(CPack)
