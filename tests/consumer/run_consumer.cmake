# Installs memtx from the build tree into a scratch prefix, configures and builds the consumer
# project against it with find_package(memtx), and runs the example.
file(REMOVE_RECURSE ${MEMTX_WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()
run(${CMAKE_COMMAND} --install ${MEMTX_BUILD_DIR} --prefix ${MEMTX_WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${MEMTX_CONSUMER_DIR} -B ${MEMTX_WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_PREFIX_PATH=${MEMTX_WORK_DIR}/prefix)
run(${CMAKE_COMMAND} --build ${MEMTX_WORK_DIR}/build)
run(${MEMTX_WORK_DIR}/build/readme_example)
