"""
ROS 2 front end: rclpy nodes (master, slave, camera) over the same core and cluster logic.

Imported only on ROS machines (rclpy, the generated ``dvs_cluster_interfaces``); nothing outside this
package and :mod:`dvs_cluster.transport.ros` imports ROS.
"""
