"""RViz markers of a prediction: positions and directions land where the ContactPose says."""

import numpy as np

from manipllm.msg import ContactPose
from manipllm_ros.geometry import quaternion_from_matrix
from manipllm_ros.nodes.markers import prediction_markers
from visualization_msgs.msg import Marker


def test_prediction_markers_follow_the_contact_pose():
    cp = ContactPose(base_frame="fr3_link0")
    R = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # up (z column) = +x, forward = +z
    q = quaternion_from_matrix(R)
    cp.contact_pose_base.position.x, cp.contact_pose_base.position.z = 0.6, 0.4
    cp.contact_pose_base.orientation.x, cp.contact_pose_base.orientation.y = q[0], q[1]
    cp.contact_pose_base.orientation.z, cp.contact_pose_base.orientation.w = q[2], q[3]
    cp.approach_pose_base.position.x, cp.approach_pose_base.position.z = 0.52, 0.4
    arr = prediction_markers(cp, stamp=None or ContactPose().header.stamp, category="microwave",
                             reasoning="pull the handle", path=[(0.6, 0.0, 0.4), (0.55, 0.02, 0.4)])
    by_id = {m.id: m for m in arr.markers}
    assert all(m.header.frame_id == "fr3_link0" for m in arr.markers)
    assert by_id[0].type == Marker.SPHERE and by_id[0].pose.position.x == 0.6
    up = by_id[1].points[1]
    assert np.allclose([up.x - 0.6, up.y, up.z - 0.4], [0.1, 0.0, 0.0])
    fwd = by_id[2].points[1]
    assert np.allclose([fwd.x - 0.6, fwd.y, fwd.z - 0.4], [0.0, 0.0, 0.1])
    assert "microwave" in by_id[5].text
    assert len(by_id[6].points) == 2 and by_id[6].action == Marker.ADD
