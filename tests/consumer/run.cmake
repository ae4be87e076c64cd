# consumer_find_package: the installed package works for a user.
#   1. cmake --install BUILD_DIR --prefix WORK/prefix
#   2. configure + build tests/consumer (find_package(numacma CONFIG REQUIRED);
#      numacma::numacma and numacma::numacma_static) and run both programs
#   3. cc main.c $(pkg-config --cflags --libs numacma), run it; and the same
#      against the static archive with pkg-config --static
# Any failing step is a FATAL_ERROR naming the step and its output.
# In: BUILD_DIR (the numacma build tree), CONSUMER_SRC (this folder), WORK (scratch).
cmake_minimum_required(VERSION 3.20)  # script mode: modern policies (IN_LIST)
foreach(v BUILD_DIR CONSUMER_SRC WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run.cmake: -D${v}=... is required")
  endif()
endforeach()

# The compilers, generator and options the library was built with.
load_cache(${BUILD_DIR} READ_WITH_PREFIX NC_
  CMAKE_GENERATOR CMAKE_MAKE_PROGRAM CMAKE_C_COMPILER CMAKE_CXX_COMPILER
  CMAKE_INSTALL_LIBDIR NUMACMA_SANITIZER)
set(fixture ${CONSUMER_SRC}/../data/arm64-4n)
set(prefix ${WORK}/prefix)
set(libdir ${prefix}/${NC_CMAKE_INSTALL_LIBDIR})
set(san_flags "")
set(san_c_flags "")
set(san_c_libs "")
if(NC_NUMACMA_SANITIZER)
  set(san_flags -fsanitize=${NC_NUMACMA_SANITIZER})
  set(san_c_flags ${san_flags})
  # A C program linking a C++ library built with a sanitizer needs the C++
  # half of the sanitizer runtime (UBSan's vptr check, TSan's new/delete),
  # which clang's C driver leaves out, and that half needs libstdc++.
  if(NC_CMAKE_C_COMPILER MATCHES "clang")
    list(APPEND san_c_flags -fsanitize-link-c++-runtime)
    set(san_c_libs -lstdc++)
  endif()
endif()

function(step name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: ${name} failed (${rc})\n  command: ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "consumer: ${name}: ok")
  set(STEP_OUT "${out}" PARENT_SCOPE)
endfunction()

function(expect_output name regex)
  if(NOT STEP_OUT MATCHES "${regex}")
    message(FATAL_ERROR "consumer: ${name} printed '${STEP_OUT}', expected /${regex}/")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

# ---- 1. install ----------------------------------------------------------------
step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(f include/numacma/numacma.hpp include/numacma/numacma.h include/numacma/result.hpp
          ${NC_CMAKE_INSTALL_LIBDIR}/libnumacma.a ${NC_CMAKE_INSTALL_LIBDIR}/libnumacma.so
          ${NC_CMAKE_INSTALL_LIBDIR}/cmake/numacma/numacmaConfig.cmake
          ${NC_CMAKE_INSTALL_LIBDIR}/pkgconfig/numacma.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "consumer: install did not produce ${prefix}/${f}")
  endif()
endforeach()

# ---- 2. find_package ---------------------------------------------------------------
set(cbuild ${WORK}/cmake-build)
step("configure the find_package consumer" ${CMAKE_COMMAND} -S ${CONSUMER_SRC} -B ${cbuild}
     -G ${NC_CMAKE_GENERATOR} -DCMAKE_MAKE_PROGRAM=${NC_CMAKE_MAKE_PROGRAM}
     -DCMAKE_CXX_COMPILER=${NC_CMAKE_CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release
     "-DCMAKE_EXE_LINKER_FLAGS=${san_flags}"
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
# It must have found THIS install, not one elsewhere on the system.
load_cache(${cbuild} READ_WITH_PREFIX C_ numacma_DIR)
if(NOT C_numacma_DIR MATCHES "^${prefix}/")
  message(FATAL_ERROR "consumer: find_package found '${C_numacma_DIR}', not the install in ${prefix}")
endif()
step("build the find_package consumer" ${CMAKE_COMMAND} --build ${cbuild})
foreach(flavour shared static)
  step("run consumer_${flavour}" ${cbuild}/consumer_${flavour} ${fixture})
  expect_output("consumer_${flavour}" "^consumer: pernuma1 node 1\n$")
endforeach()

# ---- 3. pkg-config --------------------------------------------------------------------
find_program(PKG_CONFIG NAMES pkg-config pkgconf REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${libdir}/pkgconfig)
step("pkg-config --cflags --libs numacma" ${PKG_CONFIG} --cflags --libs numacma)
string(STRIP "${STEP_OUT}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
# -I and -L must name this install (the .pc is relocatable: ${pcfiledir}/../..).
set(pc_dirs "")
foreach(f IN LISTS pc_flags)
  if(f MATCHES "^-[IL](.*)$")
    get_filename_component(d "${CMAKE_MATCH_1}" ABSOLUTE)
    list(APPEND pc_dirs "${d}")
  endif()
endforeach()
if(NOT "${prefix}/include" IN_LIST pc_dirs OR NOT "${libdir}" IN_LIST pc_dirs)
  message(FATAL_ERROR "consumer: pkg-config points elsewhere than ${prefix}: '${pc_flags}'")
endif()
step("cc main.c $(pkg-config --cflags --libs numacma)" ${NC_CMAKE_C_COMPILER} ${san_c_flags}
     ${CONSUMER_SRC}/main.c ${pc_flags} ${san_c_libs} -o ${WORK}/consumer_c)
set(ENV{LD_LIBRARY_PATH} ${libdir})
step("run consumer_c" ${WORK}/consumer_c ${fixture})
expect_output("consumer_c" "^consumer_c: node 1 dma 0x[0-9a-f]+\n$")
unset(ENV{LD_LIBRARY_PATH})

# Static: the archive instead of -lnumacma, with the .pc's Libs.private.
step("pkg-config --static --libs numacma" ${PKG_CONFIG} --static --cflags --libs numacma)
string(STRIP "${STEP_OUT}" pc_static)
separate_arguments(pc_static UNIX_COMMAND "${pc_static}")
list(TRANSFORM pc_static REPLACE "^-lnumacma$" "-l:libnumacma.a")
step("cc main.c against libnumacma.a $(pkg-config --static ...)" ${NC_CMAKE_C_COMPILER}
     ${san_c_flags} ${CONSUMER_SRC}/main.c ${pc_static} ${san_c_libs} -o ${WORK}/consumer_c_static)
step("run consumer_c_static" ${WORK}/consumer_c_static ${fixture})
expect_output("consumer_c_static" "^consumer_c: node 1 dma 0x[0-9a-f]+\n$")
